// Command delfail is a CNI plugin for tests: it passes ADD's previous result through
// and fails every DEL, like a plugin whose teardown can never work.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

func main() {
	switch os.Getenv("CNI_COMMAND") {
	case "ADD":
		var conf struct {
			PrevResult json.RawMessage `json:"prevResult"`
		}
		b, _ := io.ReadAll(os.Stdin)
		if err := json.Unmarshal(b, &conf); err != nil || len(conf.PrevResult) == 0 {
			fmt.Println(`{"cniVersion":"1.1.0","code":7,"msg":"delfail needs a previous result"}`)
			os.Exit(1)
		}
		os.Stdout.Write(conf.PrevResult)
	case "DEL":
		fmt.Println(`{"cniVersion":"1.1.0","code":999,"msg":"DEL always fails"}`)
		os.Exit(1)
	case "VERSION":
		fmt.Println(`{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}`)
	}
}
