package alerts

import (
	"bytes"
	"net/http"
	"strconv"
	"sync"
)

// streamAfter is the size of answer kept in memory before it is streamed:
// smaller answers go out whole with a Content-Length, and a failure before
// this point is still a proper error envelope.
const streamAfter = 64 << 10

// pageWriter builds the answer of ServeHTTP. It buffers the answer until
// streamAfter bytes, then, when the ResponseWriter is a network connection
// (it, or a writer it unwraps to, can flush), sends the status and headers
// and writes the rest through, so a 10,000-alert page (about 30 MB) is never
// held in memory; on other writers (the adapters' recorders, which must
// hold the answer anyway) it keeps buffering.
type pageWriter struct {
	w         http.ResponseWriter
	buf       *bytes.Buffer
	streaming bool
	err       error // first write error of a streamed answer
}

// buffers are the pageWriters' buffers, reused: a page's buffer grows to
// the answer's size (to streamAfter when streamed), and allocating it anew
// for every invocation was most of the function's garbage.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooled is the largest buffer put back: one that held a whole big page
// for a writer that cannot flush is left to the collector.
const maxPooled = 4 * streamAfter

func newPageWriter(w http.ResponseWriter) *pageWriter {
	b := buffers.Get().(*bytes.Buffer)
	b.Reset()
	return &pageWriter{w: w, buf: b}
}

// release gives the buffer back; the pageWriter is not used after.
func (p *pageWriter) release() {
	if p.buf != nil && p.buf.Cap() <= maxPooled {
		buffers.Put(p.buf)
	}
	p.buf = nil
}

func (p *pageWriter) writeString(s string) { p.buf.WriteString(s); p.spill() }

func (p *pageWriter) write(b []byte) { p.buf.Write(b); p.spill() }

func (p *pageWriter) writeByte(c byte) { p.buf.WriteByte(c) }

// committed reports whether the status line has been sent, after which a
// failure can no longer become an error envelope.
func (p *pageWriter) committed() bool { return p.streaming }

func (p *pageWriter) spill() {
	if p.buf.Len() < streamAfter {
		return
	}
	if !p.streaming {
		if !canFlush(p.w) {
			return
		}
		p.streaming = true
		setJSONHeaders(p.w.Header())
		p.w.WriteHeader(http.StatusOK)
	}
	p.flush()
}

func (p *pageWriter) flush() {
	if p.err == nil {
		_, p.err = p.w.Write(p.buf.Bytes())
	}
	p.buf.Reset()
}

// finish sends what is left: the whole answer with a Content-Length when
// nothing was streamed yet.
func (p *pageWriter) finish() {
	if p.streaming {
		p.flush()
		return
	}
	h := p.w.Header()
	setJSONHeaders(h)
	h.Set("Content-Length", strconv.Itoa(p.buf.Len()))
	p.w.WriteHeader(http.StatusOK)
	_, _ = p.buf.WriteTo(p.w)
}

func setJSONHeaders(h http.Header) {
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
}

// canFlush reports whether w, or a writer it unwraps to, is an http.Flusher:
// the mark of a network connection rather than a buffer.
func canFlush(w http.ResponseWriter) bool {
	for range 16 { // bounded: a wrapper that unwraps to itself must not hang us
		if _, ok := w.(http.Flusher); ok {
			return true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
	return false
}
