package images

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// Auth is the credential a pull request carries (CRI AuthConfig).
type Auth struct {
	Username      string
	Password      string
	Auth          string // base64 "user:password"
	ServerAddress string // when set, the credential is only for this host
	IdentityToken string // OAuth2 refresh token
	RegistryToken string // bearer token sent as is
}

func (a *Auth) empty() bool {
	return a == nil || (a.Username == "" && a.Password == "" && a.Auth == "" && a.IdentityToken == "" && a.RegistryToken == "")
}

// key identifies the credential, so pulls with different credentials never share.
func (a *Auth) key() string {
	if a.empty() {
		return ""
	}
	return strings.Join([]string{a.Username, a.Password, a.Auth, a.ServerAddress, a.IdentityToken, a.RegistryToken}, "\x00")
}

// credentials returns the username and secret for host (the registry or mirror being
// contacted). A token-only secret with an empty username is a refresh token.
func (a *Auth) credentials(host string) (string, string, error) {
	if a.empty() {
		return "", "", nil
	}
	if a.ServerAddress != "" && !sameHost(a.ServerAddress, host) {
		return "", "", nil
	}
	switch {
	case a.Username != "":
		return a.Username, a.Password, nil
	case a.IdentityToken != "":
		return "", a.IdentityToken, nil
	case a.Auth != "":
		dec, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil {
			return "", "", fmt.Errorf("auth for %s is not base64: %w", host, err)
		}
		user, pass, ok := strings.Cut(string(dec), ":")
		if !ok {
			return "", "", fmt.Errorf("auth for %s is not \"user:password\"", host)
		}
		return user, strings.Trim(pass, "\x00"), nil
	}
	return "", "", nil
}

// hostOf returns the host[:port] of a server address written as a URL or a bare host.
func hostOf(server string) string {
	if strings.Contains(server, "://") {
		if u, err := url.Parse(server); err == nil {
			return u.Host
		}
	}
	host, _, _ := strings.Cut(server, "/")
	return host
}

// dockerHubHosts are the names Docker Hub goes by in credentials files.
var dockerHubHosts = map[string]bool{"docker.io": true, "index.docker.io": true, "registry-1.docker.io": true}

func sameHost(server, host string) bool {
	s := hostOf(server)
	return s == host || (dockerHubHosts[s] && dockerHubHosts[host])
}

// authFile is a docker-style config.json: {"auths": {"<server>": {...}}}.
type authFile struct {
	Auths map[string]struct {
		Auth          string `json:"auth"`
		Username      string `json:"username"`
		Password      string `json:"password"`
		IdentityToken string `json:"identitytoken"`
		RegistryToken string `json:"registrytoken"`
	} `json:"auths"`
}

// loadAuthFile reads credentials for host from a docker-style config file ("" = none).
// The file is read at each pull, so edits apply without a restart.
func loadAuthFile(path, host string) (*Auth, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("images.auth_file: %w", err)
	}
	var f authFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("images.auth_file %s: %w", path, err)
	}
	for server, e := range f.Auths {
		if sameHost(server, host) {
			return &Auth{Username: e.Username, Password: e.Password, Auth: e.Auth, IdentityToken: e.IdentityToken, RegistryToken: e.RegistryToken}, nil
		}
	}
	return nil, nil
}
