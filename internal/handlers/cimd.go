package handlers

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// MetadataDocumentConfig configures client ID metadata documents
// (draft-ietf-oauth-client-id-metadata-document, MCP authorization
// 2025-11-25): a client_id that is an https URL names a document holding
// the client's metadata.
type MetadataDocumentConfig struct {
	// AllowedHosts restricts the hosts that may serve documents; empty
	// allows any.
	AllowedHosts []string
	// AllowPrivate lets documents come from loopback, private,
	// link-local and other non-public addresses. Off by default: the
	// fetch is a request into the operator's network on a stranger's say.
	AllowPrivate bool
	// Timeout bounds one fetch. Default: 5 s.
	Timeout time.Duration
	// MaxBytes bounds a document. Default: 5 KiB.
	MaxBytes int64
	// TLS overrides the TLS configuration of fetches (tests trust their
	// own CA with it).
	TLS *tls.Config
}

const (
	maxCachedDocuments = 1000
	defaultDocumentTTL = 5 * time.Minute
	maxDocumentTTL     = 24 * time.Hour
)

// errDocumentFetch is what a person is shown when a document could not be
// retrieved: the cause (a resolver's address, whether an internal name
// resolves, a connection refused) describes the operator's network and is
// only logged.
var errDocumentFetch = errors.New("the document could not be retrieved")

type cachedDocument struct {
	client  *storage.Client
	expires time.Time
}

// metadataDocuments fetches, validates and caches client metadata
// documents. Each fetch has its own deadline and holds no lock, so a slow
// document host delays only the requests naming its documents.
type metadataDocuments struct {
	cfg    MetadataDocumentConfig
	policy metadataPolicy
	log    *zap.Logger
	http   *http.Client
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]cachedDocument
}

func newMetadataDocuments(cfg MetadataDocumentConfig, policy metadataPolicy, log *zap.Logger) *metadataDocuments {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 5 << 10
	}
	m := &metadataDocuments{cfg: cfg, policy: policy, log: log, now: time.Now, cache: map[string]cachedDocument{}}
	dialer := &net.Dialer{Timeout: cfg.Timeout}
	transport := &http.Transport{
		Proxy:                 nil, // never through a proxy from the environment
		DialContext:           m.dialPublic(dialer),
		TLSClientConfig:       cfg.TLS,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConns:          16,
		IdleConnTimeout:       30 * time.Second,
		DisableCompression:    true,
	}
	m.http = &http.Client{
		Transport: transport,
		Timeout:   cfg.Timeout,
		// No redirects: the document must be at the client_id itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return m
}

// dialPublic resolves the host and connects only to an address the policy
// allows, checked after DNS resolution (a public name may resolve to a
// private address) and dialed by IP (so a second lookup cannot change it).
func (m *metadataDocuments) dialPublic(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return nil, err
		}
		for _, ip := range ips {
			if !m.cfg.AllowPrivate && !isPublicIP(ip.IP) {
				continue
			}
			return d.DialContext(ctx, network, net.JoinHostPort(ip.IP.String(), port))
		}
		return nil, fmt.Errorf("%s resolves to no public address", host)
	}
}

// isPublicIP rejects loopback, private, link-local, multicast, unspecified
// and other special-purpose addresses.
func isPublicIP(ip net.IP) bool {
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	if ip4 := ip.To4(); ip4 != nil {
		// 0/8, 100.64/10 (shared), 192.0.0/24, 198.18/15 (benchmarking), 240/4.
		switch {
		case ip4[0] == 0, ip4[0] == 100 && ip4[1]&0xc0 == 64, ip4[0] == 192 && ip4[1] == 0 && ip4[2] == 0,
			ip4[0] == 198 && ip4[1]&0xfe == 18, ip4[0] >= 240:
			return false
		}
	}
	return true
}

// checkDocumentURL applies the draft's rules to a client_id URL: https,
// a path without dot segments, no fragment, no credentials, and a host
// the operator allows.
func (m *metadataDocuments) checkDocumentURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, errors.New("the client_id is not an https URL")
	}
	if u.Path == "" || u.Path == "/" || hasDotSegment(u.Path) || u.Fragment != "" || strings.Contains(raw, "#") || u.User != nil {
		return nil, errors.New("the client_id URL must have a path without . or .. segments, and no fragment or credentials")
	}
	if len(m.cfg.AllowedHosts) > 0 && !slices.Contains(m.cfg.AllowedHosts, u.Hostname()) {
		return nil, fmt.Errorf("documents from %s are not allowed here", u.Hostname())
	}
	return u, nil
}

// hasDotSegment reports whether a decoded URL path has a "." or ".."
// segment, which a client ID URL must not (draft-ietf-oauth-client-id-
// metadata-document §3): two spellings of one document would be two
// clients. The path is the decoded one, so %2e and %2E count as dots.
func hasDotSegment(path string) bool {
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// hostAllowed reports whether the operator named host among the hosts
// allowed to serve metadata documents (not merely allowed any host).
func (m *metadataDocuments) hostAllowed(host string) bool {
	return m != nil && slices.Contains(m.cfg.AllowedHosts, host)
}

// client returns the client a metadata document describes.
func (m *metadataDocuments) client(ctx context.Context, clientID string) (*storage.Client, error) {
	if _, err := m.checkDocumentURL(clientID); err != nil {
		return nil, err
	}
	m.mu.Lock()
	if d, ok := m.cache[clientID]; ok && m.now().Before(d.expires) {
		m.mu.Unlock()
		return d.client, nil
	}
	m.mu.Unlock()

	body, ttl, err := m.fetch(ctx, clientID)
	if err != nil {
		return nil, err
	}
	c, err := m.parseDocument(clientID, body)
	if err != nil {
		return nil, err
	}
	if ttl > 0 {
		m.mu.Lock()
		if len(m.cache) >= maxCachedDocuments {
			for k := range m.cache {
				delete(m.cache, k)
				break
			}
		}
		m.cache[clientID] = cachedDocument{client: c, expires: m.now().Add(ttl)}
		m.mu.Unlock()
	}
	return c, nil
}

func (m *metadataDocuments) fetch(ctx context.Context, clientID string) ([]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientID, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := m.http.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", errDocumentFetch, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("the document answered %d", resp.StatusCode)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return nil, 0, errors.New("the document is not application/json")
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, m.cfg.MaxBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("reading the document failed: %w", err)
	}
	if int64(len(body)) > m.cfg.MaxBytes {
		return nil, 0, fmt.Errorf("the document is larger than %d bytes", m.cfg.MaxBytes)
	}
	return body, documentTTL(resp.Header.Get("Cache-Control")), nil
}

// documentTTL reads how long a document may be cached from its
// Cache-Control: no-store or no-cache mean not at all, max-age within a
// bound, and a default when it says nothing.
func documentTTL(cc string) time.Duration {
	ttl := defaultDocumentTTL
	for _, d := range strings.Split(cc, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "no-store", d == "no-cache":
			return 0
		case strings.HasPrefix(d, "max-age="):
			n, err := strconv.Atoi(strings.TrimPrefix(d, "max-age="))
			if err != nil || n < 0 {
				continue
			}
			ttl = min(time.Duration(n)*time.Second, maxDocumentTTL)
		}
	}
	return ttl
}

// parseDocument validates a metadata document as registration does, plus
// the draft's own rules: client_id equals the URL exactly, and the client
// is public (token_endpoint_auth_method none; this server accepts no keys
// from documents).
func (m *metadataDocuments) parseDocument(clientID string, body []byte) (*storage.Client, error) {
	req, oerr := parseMetadata(body)
	if oerr != nil {
		return nil, errors.New(oerr.Description)
	}
	if req.clientID != clientID {
		return nil, errors.New("the document's client_id is not the URL it was fetched from")
	}
	if req.clientSecret != "" {
		return nil, errors.New("a metadata document must not hold a client_secret")
	}
	switch req.meta.TokenEndpointAuthMethod {
	case "":
		req.meta.TokenEndpointAuthMethod = storage.AuthMethodNone
	case storage.AuthMethodNone:
	default:
		return nil, errors.New("only token_endpoint_auth_method none is accepted from a metadata document")
	}
	if oerr := m.policy.validateMetadata(&req.meta); oerr != nil {
		return nil, errors.New(oerr.Description)
	}
	return &storage.Client{ID: clientID, Metadata: req.meta}, nil
}
