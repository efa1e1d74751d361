package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Changed lists the keys (as in the file: "images.auth_file") whose values differ
// between a and b, sorted. A table of tables (runtime.handlers) is one key.
func Changed(a, b Config) []string {
	fa, fb := flatten(reflect.ValueOf(a), ""), flatten(reflect.ValueOf(b), "")
	var out []string
	for k, v := range fa {
		if fb[k] != v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func flatten(v reflect.Value, prefix string) map[string]string {
	out := map[string]string{}
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		if f := v.Field(i); f.Kind() == reflect.Struct && f.Type() != reflect.TypeOf(Duration(0)) {
			for k, s := range flatten(f, key+".") {
				out[k] = s
			}
		} else {
			out[key] = fmt.Sprintf("%#v", f.Interface())
		}
	}
	return out
}
