package caddydcr

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-dcr/caddy-dcr/internal/handlers"
	"github.com/caddy-dcr/caddy-dcr/internal/metrics"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

// servers are the provisioned dcr handlers, by the name of the store
// each uses, for the admin API: Caddy provisions admin modules before the
// apps (and so before any dcr handler) of a config, so the admin API finds
// the handlers here when a request comes, not in its Provision. Like the
// store pool, it is process-wide: a reload adds the new config's handlers
// before it removes the old one's.
var servers = &registry{byStore: map[string][]*handlers.Server{}}

type registry struct {
	mu      sync.Mutex
	byStore map[string][]*handlers.Server // in the order provisioned
}

// expose puts a provisioned handler's server within the admin API's reach
// until ctx (the handler's config) is cancelled, and registers the metrics
// in ctx's registry. A store Share did not open has no name and is not
// exposed.
func (reg *registry) expose(ctx caddy.Context, s *handlers.Server) error {
	if err := metrics.Register(ctx.GetMetricsRegistry(), clientCount); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	name := storage.NameOf(s.Store())
	reg.add(name, s)
	context.AfterFunc(ctx, func() { reg.remove(name, s) })
	return nil
}

func (reg *registry) add(store string, s *handlers.Server) {
	if store == "" {
		return
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	reg.byStore[store] = append(reg.byStore[store], s)
}

func (reg *registry) remove(store string, s *handlers.Server) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	list := slices.DeleteFunc(reg.byStore[store], func(x *handlers.Server) bool { return x == s })
	if len(list) == 0 {
		delete(reg.byStore, store)
		return
	}
	reg.byStore[store] = list
}

// storeInfo describes one store for GET /dcr/stores.
type storeInfo struct {
	Name     string `json:"name"`
	Handlers int    `json:"handlers"`
}

func (reg *registry) stores() []storeInfo {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	out := []storeInfo{}
	for name, list := range reg.byStore {
		out = append(out, storeInfo{name, len(list)})
	}
	slices.SortFunc(out, func(a, b storeInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// each calls fn with each store's name and its newest handler.
func (reg *registry) each(fn func(store string, s storeHolder)) {
	reg.mu.Lock()
	picked := make(map[string]*handlers.Server, len(reg.byStore))
	for name, list := range reg.byStore {
		picked[name] = list[len(list)-1]
	}
	reg.mu.Unlock()
	for name, s := range picked {
		fn(name, s)
	}
}

// server returns the handler that serves the admin API for the store
// named store, or for the only store when store is "". When several
// handlers share a store, the newest one is used: settings that differ
// among them (scopes_supported, client_secret_ttl) are that one's.
func (reg *registry) server(store string) (*handlers.Server, error) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if store == "" {
		switch len(reg.byStore) {
		case 0:
			return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no dcr handler is running")}
		case 1:
			for _, list := range reg.byStore {
				return list[len(list)-1], nil
			}
		}
		names := make([]string, 0, len(reg.byStore))
		for name := range reg.byStore {
			names = append(names, name)
		}
		slices.Sort(names)
		return nil, caddy.APIError{HTTPStatus: http.StatusBadRequest,
			Err: fmt.Errorf("dcr handlers use %d stores: say which with ?store=<name> (caddy dcr --store <name>), one of %q", len(names), names)}
	}
	list := reg.byStore[store]
	if len(list) == 0 {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no dcr handler uses store %q (GET /dcr/stores lists them)", store)}
	}
	return list[len(list)-1], nil
}
