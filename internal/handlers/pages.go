package handlers

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
)

//go:embed templates/*.html
var templateFiles embed.FS

var pages = template.Must(template.ParseFS(templateFiles, "templates/*.html"))

// pageSecurityHeaders keep the pages from being framed (clickjacking: a
// hidden consent page under a decoy button) or cached, and let them load
// nothing but their inline style and the client's logo.
func pageSecurityHeaders(h http.Header) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy",
		"default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-ancestors 'none'; base-uri 'none'")
}

// renderPage writes one of the templates. html/template escapes every value
// for its context, so client-supplied names and URLs cannot inject markup.
func (s *Server) renderPage(w http.ResponseWriter, status int, name string, data any) {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		s.log.Error("rendering page failed: " + err.Error())
		status = http.StatusInternalServerError
		b.Reset()
		b.WriteString("internal error")
	}
	pageSecurityHeaders(w.Header())
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// message is the content of message.html; Link, when set, is a URL
// already checked to be safe in an href. FormAction, when set, adds a
// button that posts CSRF there.
type message struct {
	Title, Message string
	Link           template.URL
	LinkText       string
	FormAction     string
	CSRF, Button   string
}

// showError renders a message page: for errors that must not be sent to
// the client's redirect URI (RFC 6749 §4.1.2.1: an unknown client or a bad
// redirect URI), and for a person who is not signed in.
func (s *Server) showError(w http.ResponseWriter, status int, title, msg string) {
	s.renderPage(w, status, "message.html", message{Title: title, Message: msg})
}
