package badger

import (
	"encoding/json"
	"reflect"
	"testing"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// fullClient sets every field a client record holds.
func fullClient() *storage.Client {
	keep := false
	return &storage.Client{
		ID: "full", IssuedAt: 1795849333, SecretHash: storage.HashSecret("s"), SecretExpiresAt: 1895849333,
		RegistrationTokenHash: storage.HashSecret("r"),
		Metadata: storage.Metadata{
			RedirectURIs:            []string{"https://app.example.com/cb", "http://127.0.0.1/cb"},
			TokenEndpointAuthMethod: storage.AuthMethodPost,
			GrantTypes:              []string{"authorization_code", "refresh_token"},
			ResponseTypes:           []string{"code"},
			ClientName:              "Full ✓", ClientURI: "https://app.example.com", LogoURI: "https://app.example.com/l.png",
			Scope: "read write", Contacts: []string{"ops@example.com", "dev@example.com"},
			TOSURI: "https://app.example.com/tos", PolicyURI: "https://app.example.com/policy",
			JWKSURI: "https://app.example.com/jwks", JWKS: json.RawMessage(`{"keys":[]}`),
			SoftwareID: "4NRB1-0XZABZI9E6-5SM3R", SoftwareVersion: "2.1",
			Extra: map[string]json.RawMessage{"x_b": json.RawMessage(`[1,2]`), "x_a": json.RawMessage(`"a"`)},
		},
		Origin: storage.OriginOperator, LastUsedAt: 1795850000,
		Settings: storage.ClientSettings{
			Disabled: true, AccessTokenTTL: 300, RefreshTokenTTL: 3600, Scope: "read", Keep: &keep,
		},
	}
}

// fullClient must set every field, so that the round trip below covers
// them all: a field added to the client later and not to the record fails
// here first.
func TestFullClientSetsEveryField(t *testing.T) {
	var zero func(path string, v reflect.Value)
	zero = func(path string, v reflect.Value) {
		if v.Kind() == reflect.Struct {
			for i := range v.NumField() {
				zero(path+"."+v.Type().Field(i).Name, v.Field(i))
			}
			return
		}
		if v.IsZero() {
			t.Errorf("fullClient leaves %s unset", path)
		}
	}
	zero("Client", reflect.ValueOf(*fullClient()))
}

func TestClientRecordRoundTrip(t *testing.T) {
	keep := true
	kept := fullClient()
	kept.Settings.Keep, kept.Settings.Disabled = &keep, false
	for _, c := range []*storage.Client{fullClient(), kept} {
		b, err := encodeClient(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeClient(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip changed the client:\n got %+v\nwant %+v", got, c)
		}
	}

	// A client with nothing optional set reads back as the same client
	// on the wire and in its settings (empty lists may come back non-nil).
	bare := &storage.Client{ID: "bare", IssuedAt: 1, Metadata: storage.Metadata{TokenEndpointAuthMethod: storage.AuthMethodNone}}
	b, _ := encodeClient(bare)
	got, err := decodeClient(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Settings.Keep != nil || got.Metadata.Extra != nil || got.Metadata.JWKS != nil || got.SecretHash != nil {
		t.Fatalf("empty fields came back set: %+v", got)
	}
	if wire(t, got) != wire(t, bare) {
		t.Fatalf("bare client: got %s, want %s", wire(t, got), wire(t, bare))
	}
}

func wire(t *testing.T, c *storage.Client) string {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The binary record exists to be small: Badger keeps the tables it writes
// resident, so record size is memory.
func TestClientRecordIsCompact(t *testing.T) {
	c := &storage.Client{
		ID: "j3-i2TqL2JamVp7ffs14HA", IssuedAt: 1795849333,
		SecretHash: storage.HashSecret("s"), RegistrationTokenHash: storage.HashSecret("r"),
		Metadata: storage.Metadata{
			RedirectURIs: []string{"https://app.example.com/oauth/callback"}, TokenEndpointAuthMethod: storage.AuthMethodBasic,
			GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"},
			ClientName: "Footprint test client", Scope: "read write", Contacts: []string{"ops@example.com"},
		},
	}
	b, _ := encodeClient(c)
	j, _ := json.Marshal(clientRecordJSON{
		ID: c.ID, IssuedAt: c.IssuedAt, SecretHash: c.SecretHash, RegistrationTokenHash: c.RegistrationTokenHash,
		Metadata: metadataFields(c.Metadata),
	})
	t.Logf("record: %d bytes binary, %d bytes JSON", len(b), len(j))
	if 2*len(b) > len(j) {
		t.Fatalf("binary record of %d bytes is more than half the JSON one (%d)", len(b), len(j))
	}
}

// A record stored as JSON by an earlier version is still read, and is
// rewritten in the binary form by the next update.
func TestClientRecordReadsJSON(t *testing.T) {
	const stored = `{"id":"old","issued_at":1795849333,"secret_hash":"3CxDf5V3TFcj56Ys6Kpjn8i4PDhDxJoXxeAG5Nj1QJo=",` +
		`"registration_token_hash":"r8hSLOEVyVH+aMLqeRHL+xghJMa1V8eRUg6ZvyTHrc4=","metadata":{"redirect_uris":` +
		`["https://app.example.com/oauth/callback"],"token_endpoint_auth_method":"client_secret_basic","grant_types":` +
		`["authorization_code"],"response_types":["code"],"client_name":"Old client","scope":"read write",` +
		`"contacts":["ops@example.com"]},"extra":{"x_ext":true},"origin":"operator","settings":{"disabled":true}}`
	s := openMem(t)
	defer s.Close()
	ctx := t.Context()
	if err := s.db.Update(func(txn *bdb.Txn) error { return txn.Set(clientKey("old"), []byte(stored)) }); err != nil {
		t.Fatal(err)
	}
	c, err := s.Client(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if c.Metadata.ClientName != "Old client" || c.Origin != storage.OriginOperator || !c.Settings.Disabled ||
		string(c.Metadata.Extra["x_ext"]) != "true" || len(c.SecretHash) != 32 || c.Metadata.RedirectURIs[0] != "https://app.example.com/oauth/callback" {
		t.Fatalf("JSON record read as %+v", c)
	}
	if err := s.TouchClient(ctx, "old", 1795850000); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := s.db.View(func(txn *bdb.Txn) error {
		item, err := txn.Get(clientKey("old"))
		if err != nil {
			return err
		}
		raw, err = item.ValueCopy(nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if raw[0] != clientRecordV1 {
		t.Fatalf("updated record still starts with %q", raw[0])
	}
	after, err := s.Client(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	c.LastUsedAt = 1795850000
	if !reflect.DeepEqual(after, c) {
		t.Fatalf("rewrite changed the client:\n got %+v\nwant %+v", after, c)
	}
}

// FuzzClientRecord: no input makes the decoder panic or allocate beyond
// its size, and whatever it accepts encodes back to a record that decodes
// to the same client.
func FuzzClientRecord(f *testing.F) {
	b, _ := encodeClient(fullClient())
	f.Add(b)
	f.Add(standInClient)
	f.Add([]byte(`{"id":"x"}`))
	f.Add([]byte{clientRecordV1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeClient(b)
		if err != nil || b[0] != clientRecordV1 {
			return
		}
		again, err := encodeClient(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := decodeClient(again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("re-encoding changed the client:\n%+v\n%+v", c, c2)
		}
	})
}
