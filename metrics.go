package caddydcr

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// clientCount is the caddy_dcr_clients gauge: the clients registered in
// each store that a dcr handler uses, labelled with the store's name (as
// GET /dcr/stores lists it). The count is the store's CountClients (no
// scan, but a query on PostgreSQL), reused for countInterval: a scrape
// every few seconds costs one query per store and interval.
var clientCount = &clientsGauge{
	desc: prometheus.NewDesc("caddy_dcr_clients", "Registered clients, by store.", []string{"store"}, nil),
	last: map[string]counted{},
}

const countInterval = 30 * time.Second

type clientsGauge struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	last map[string]counted
}

type counted struct {
	n  int
	at time.Time
}

// Describe implements prometheus.Collector.
func (g *clientsGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect implements prometheus.Collector. A store that cannot be counted
// now keeps its last count, or is left out.
func (g *clientsGauge) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock() // one count at a time, however many scrapes wait
	defer g.mu.Unlock()
	now := time.Now()
	seen := map[string]bool{}
	servers.each(func(name string, s storeHolder) {
		seen[name] = true
		c, ok := g.last[name]
		if !ok || now.Sub(c.at) >= countInterval {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			n, err := s.Store().CountClients(ctx)
			cancel()
			if err == nil {
				c, ok = counted{n, now}, true
				g.last[name] = c
			}
		}
		if ok {
			ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(c.n), name)
		}
	})
	for name := range g.last {
		if !seen[name] {
			delete(g.last, name)
		}
	}
}

type storeHolder interface{ Store() storage.Store }
