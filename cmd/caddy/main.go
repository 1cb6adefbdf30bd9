// Command caddy is Caddy with its standard modules plus caddy-dcr, so the
// project can be run from a clone with `go run ./cmd/caddy run --config
// Caddyfile.example --adapter caddyfile`. Users who want caddy-dcr in their
// own Caddy build it with `xcaddy build --with github.com/caddy-dcr/caddy-dcr`.
package main

import (
	_ "time/tzdata"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-dcr/caddy-dcr"
)

func main() {
	caddycmd.Main()
}
