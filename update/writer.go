package update

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/otakit/otakit/codec"
)

// Writer writes one update package. The payload streams through it:
// plaintext → SHA-256 → compressor → AES-CTR → SHA-256 → output. Because the
// header holds sizes and digests that are known only at the end, the output
// must be seekable; Close goes back and writes the header.
type Writer struct {
	w      io.WriteSeeker
	start  int64
	hdr    Header
	plain  hash.Hash
	n      int64
	zw     io.WriteCloser
	stored *storedWriter
	closed bool
	err    error
}

// storedWriter encrypts (if a stream is set), hashes and counts the bytes it
// passes on.
type storedWriter struct {
	w      io.Writer
	stream cipher.Stream
	sum    hash.Hash
	n      int64
	buf    []byte
}

func (s *storedWriter) Write(p []byte) (int, error) {
	out := p
	if s.stream != nil {
		if cap(s.buf) < len(p) {
			s.buf = make([]byte, len(p))
		}
		out = s.buf[:len(p)]
		s.stream.XORKeyStream(out, p)
	}
	s.sum.Write(out)
	n, err := s.w.Write(out)
	s.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}

// NewWriter starts a package at the current position of w. hdr supplies the
// type, versions, compression and encryption; key must be nil for
// EncryptNone and of the algorithm's size otherwise. A fresh random nonce is
// drawn for every package.
func NewWriter(w io.WriteSeeker, hdr Header, key []byte) (*Writer, error) {
	hdr.Nonce = [16]byte{}
	hdr.Size, hdr.StoredSize = 0, 0
	hdr.SHA256, hdr.StoredSHA256 = [32]byte{}, [32]byte{}
	if err := hdr.validate(); err != nil {
		return nil, err
	}
	c, err := codec.ByID(hdr.Compression)
	if err != nil {
		return nil, err
	}
	var stream cipher.Stream
	if ks := hdr.Encryption.KeySize(); ks != 0 {
		if len(key) != ks {
			return nil, fmt.Errorf("%w: %s needs a %d-byte key, got %d bytes", ErrKey, hdr.Encryption, ks, len(key))
		}
		if _, err := rand.Read(hdr.Nonce[:]); err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		stream = cipher.NewCTR(block, hdr.Nonce[:])
	} else if key != nil {
		return nil, fmt.Errorf("%w: key given for an unencrypted package", ErrKey)
	}
	start, err := w.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	// Reserve the header; Close overwrites it.
	if _, err := w.Write(make([]byte, HeaderSize)); err != nil {
		return nil, err
	}
	sw := &storedWriter{w: w, stream: stream, sum: sha256.New()}
	zw, err := c.NewWriter(sw)
	if err != nil {
		return nil, err
	}
	return &Writer{w: w, start: start, hdr: hdr, plain: sha256.New(), zw: zw, stored: sw}, nil
}

// Write compresses, encrypts and writes plaintext payload bytes.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errors.New("update: write after Close")
	}
	n, err := w.zw.Write(p)
	w.plain.Write(p[:n])
	w.n += int64(n)
	if err != nil {
		w.err = err
	}
	return n, err
}

// ReadFrom streams all of r into the package.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{w}, r)
}

// Close flushes the compressor, writes the completed header at the start of
// the package and leaves w positioned after the payload. It does not close
// the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	if err := w.zw.Close(); err != nil {
		w.err = err
		return err
	}
	w.hdr.Size = w.n
	copy(w.hdr.SHA256[:], w.plain.Sum(nil))
	w.hdr.StoredSize = w.stored.n
	copy(w.hdr.StoredSHA256[:], w.stored.sum.Sum(nil))
	b, err := w.hdr.MarshalBinary()
	if err == nil {
		_, err = w.w.Seek(w.start, io.SeekStart)
	}
	if err == nil {
		_, err = w.w.Write(b)
	}
	if err == nil {
		_, err = w.w.Seek(w.start+HeaderSize+w.stored.n, io.SeekStart)
	}
	w.err = err
	return err
}

// Header returns the header as written; complete only after Close.
func (w *Writer) Header() Header { return w.hdr }
