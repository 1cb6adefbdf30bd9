package badger

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// A client record is the value under c/<client id>. It is binary: a
// version byte, then the fields in a fixed order, each string or byte
// string as a uvarint length and its bytes, each list as a uvarint count and
// its strings, each integer as a varint. Half the size of the JSON it
// replaced, which matters because Badger keeps every table it writes
// mapped and resident until the table is compacted away: 100,000 clients
// took 57 MiB of resident tables as JSON.
//
// Values from small closed sets (authentication methods, grant and
// response types, origins) are written as their index in recordSymbols
// when they are in it: a symbol n is the uvarint 2n+1, a literal string of
// length l is 2l followed by its bytes.
//
// Records written before, as JSON, start with '{' and are still read;
// they are rewritten in the binary form on their next update.
const clientRecordV1 = 1

// settings flags in a record
const (
	flagDisabled = 1 << iota
	flagKeepSet
	flagKeep
)

// recordSymbols is part of the record format: append only, never reorder.
var recordSymbols = [...]string{
	storage.AuthMethodBasic, storage.AuthMethodPost, storage.AuthMethodNone,
	"authorization_code", "refresh_token", "client_credentials", "code",
	storage.OriginInitialAccessToken, storage.OriginOperator,
}

var errBadRecord = errors.New("malformed client record")

func encodeClient(c *storage.Client) ([]byte, error) {
	m := &c.Metadata
	b := make([]byte, 0, 256)
	b = append(b, clientRecordV1)
	b = appendString(b, c.ID)
	b = binary.AppendVarint(b, c.IssuedAt)
	b = appendString(b, string(c.SecretHash))
	b = binary.AppendVarint(b, c.SecretExpiresAt)
	b = appendString(b, string(c.RegistrationTokenHash))
	b = appendList(b, m.RedirectURIs)
	b = appendSymbol(b, m.TokenEndpointAuthMethod)
	b = appendSymbols(b, m.GrantTypes)
	b = appendSymbols(b, m.ResponseTypes)
	for _, s := range []string{m.ClientName, m.ClientURI, m.LogoURI, m.Scope} {
		b = appendString(b, s)
	}
	b = appendList(b, m.Contacts)
	for _, s := range []string{m.TOSURI, m.PolicyURI, m.JWKSURI, string(m.JWKS), m.SoftwareID, m.SoftwareVersion} {
		b = appendString(b, s)
	}
	// Extension members in name order, so that equal clients encode alike.
	names := make([]string, 0, len(m.Extra))
	for name := range m.Extra {
		names = append(names, name)
	}
	slices.Sort(names)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, name := range names {
		b = appendString(b, name)
		b = appendString(b, string(m.Extra[name]))
	}
	b = appendSymbol(b, c.Origin)
	b = binary.AppendVarint(b, c.LastUsedAt)
	s := &c.Settings
	var flags byte
	if s.Disabled {
		flags |= flagDisabled
	}
	if s.Keep != nil {
		flags |= flagKeepSet
		if *s.Keep {
			flags |= flagKeep
		}
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, s.AccessTokenTTL)
	b = binary.AppendVarint(b, s.RefreshTokenTTL)
	return appendString(b, s.Scope), nil
}

func decodeClient(b []byte) (*storage.Client, error) {
	if len(b) > 0 && b[0] == '{' {
		return decodeClientJSON(b)
	}
	if len(b) == 0 || b[0] != clientRecordV1 {
		return nil, errBadRecord
	}
	r := recordReader{b: b[1:]}
	c := &storage.Client{}
	m := &c.Metadata
	c.ID = r.string()
	c.IssuedAt = r.varint()
	c.SecretHash = r.bytes()
	c.SecretExpiresAt = r.varint()
	c.RegistrationTokenHash = r.bytes()
	m.RedirectURIs = r.list()
	m.TokenEndpointAuthMethod = r.symbol()
	m.GrantTypes = r.symbols()
	m.ResponseTypes = r.symbols()
	for _, s := range []*string{&m.ClientName, &m.ClientURI, &m.LogoURI, &m.Scope} {
		*s = r.string()
	}
	m.Contacts = r.list()
	for _, s := range []*string{&m.TOSURI, &m.PolicyURI, &m.JWKSURI} {
		*s = r.string()
	}
	if jwks := r.bytes(); len(jwks) > 0 {
		m.JWKS = jwks
	}
	m.SoftwareID, m.SoftwareVersion = r.string(), r.string()
	if n := r.count(); n > 0 {
		m.Extra = make(map[string]json.RawMessage, n)
		for range n {
			name := r.string()
			m.Extra[name] = r.bytes()
		}
	}
	c.Origin = r.symbol()
	c.LastUsedAt = r.varint()
	flags := r.byte()
	s := &c.Settings
	s.Disabled = flags&flagDisabled != 0
	if flags&flagKeepSet != 0 {
		keep := flags&flagKeep != 0
		s.Keep = &keep
	}
	s.AccessTokenTTL = r.varint()
	s.RefreshTokenTTL = r.varint()
	s.Scope = r.string()
	if r.err != nil || len(r.b) > 0 {
		return nil, fmt.Errorf("%w: client %q", errBadRecord, c.ID)
	}
	return c, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendList(b []byte, l []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(l)))
	for _, s := range l {
		b = appendString(b, s)
	}
	return b
}

func appendSymbol(b []byte, s string) []byte {
	if i := slices.Index(recordSymbols[:], s); i >= 0 {
		return binary.AppendUvarint(b, uint64(2*i+1))
	}
	b = binary.AppendUvarint(b, 2*uint64(len(s)))
	return append(b, s...)
}

func appendSymbols(b []byte, l []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(l)))
	for _, s := range l {
		b = appendSymbol(b, s)
	}
	return b
}

// recordReader reads a binary record. The first malformed field sets err;
// every later read then returns zero values.
type recordReader struct {
	b   []byte
	err error
}

func (r *recordReader) fail() { r.err, r.b = errBadRecord, nil }

func (r *recordReader) uvarint() uint64 { return readVarint(r, binary.Uvarint) }
func (r *recordReader) varint() int64   { return readVarint(r, binary.Varint) }

func readVarint[T uint64 | int64](r *recordReader, decode func([]byte) (T, int)) T {
	v, n := decode(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// count reads a count of items that each take at least one byte, so a
// corrupt count cannot make the caller allocate more than the record holds.
func (r *recordReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return 0
	}
	return int(n)
}

// bytes returns a copy of the next byte string (the record's memory is
// Badger's and valid only during the read), nil when it is empty.
func (r *recordReader) bytes() []byte {
	n := r.count()
	if n == 0 {
		return nil
	}
	v := slices.Clone(r.b[:n])
	r.b = r.b[n:]
	return v
}

func (r *recordReader) string() string {
	n := r.count()
	v := string(r.b[:n])
	r.b = r.b[n:]
	return v
}

func (r *recordReader) symbol() string {
	v := r.uvarint()
	if v&1 == 1 {
		if v/2 >= uint64(len(recordSymbols)) {
			r.fail()
			return ""
		}
		return recordSymbols[v/2]
	}
	if v/2 > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:v/2])
	r.b = r.b[v/2:]
	return s
}

func (r *recordReader) symbols() []string {
	n := r.count()
	l := make([]string, n)
	for i := range l {
		l[i] = r.symbol()
	}
	return l
}

// list returns the next list of strings, never nil: the metadata lists are
// arrays on the wire even when empty.
func (r *recordReader) list() []string {
	n := r.count()
	l := make([]string, n)
	for i := range l {
		l[i] = r.string()
	}
	return l
}

// clientRecordJSON is how clients were stored before the binary record:
// the metadata's extension members sit in a member of their own.
type clientRecordJSON struct {
	ID                    string                     `json:"id"`
	IssuedAt              int64                      `json:"issued_at"`
	SecretHash            []byte                     `json:"secret_hash,omitempty"`
	SecretExpiresAt       int64                      `json:"secret_expires_at,omitempty"`
	RegistrationTokenHash []byte                     `json:"registration_token_hash"`
	Metadata              metadataFields             `json:"metadata"`
	Extra                 map[string]json.RawMessage `json:"extra,omitempty"`
	Origin                string                     `json:"origin,omitempty"`
	LastUsedAt            int64                      `json:"last_used_at,omitempty"`
	Settings              storage.ClientSettings     `json:"settings"`
}

// metadataFields is storage.Metadata without its methods, so a JSON record
// decodes in one pass (Metadata's own decoder, for the wire format, needs
// two).
type metadataFields storage.Metadata

func decodeClientJSON(b []byte) (*storage.Client, error) {
	var rec clientRecordJSON
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	m := storage.Metadata(rec.Metadata)
	m.Extra = rec.Extra
	return &storage.Client{
		ID: rec.ID, IssuedAt: rec.IssuedAt, SecretHash: rec.SecretHash, SecretExpiresAt: rec.SecretExpiresAt,
		RegistrationTokenHash: rec.RegistrationTokenHash, Metadata: m,
		Origin: rec.Origin, LastUsedAt: rec.LastUsedAt, Settings: rec.Settings,
	}, nil
}
