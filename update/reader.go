package update

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/otakit/otakit/codec"
)

// ReadHeader reads and checks the header at the start of r, leaving r at the
// first payload byte.
func ReadHeader(r io.Reader) (*Header, error) {
	b := make([]byte, HeaderSize)
	if n, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: header is %d bytes, want %d", ErrTruncated, n, HeaderSize)
		}
		return nil, err
	}
	h := new(Header)
	if err := h.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return h, nil
}

// Reader reads the plaintext payload of a package. It checks, as the bytes
// stream past, that the stored payload has the declared size and SHA-256 and
// that the plaintext has the declared size and SHA-256; a mismatch is
// reported by Read in place of io.EOF. Callers must therefore treat the
// output as untrusted until Read has returned io.EOF.
type Reader struct {
	hdr    Header
	stored *storedReader
	zr     io.ReadCloser
	plain  hash.Hash
	n      int64
	err    error
}

// storedReader hashes, counts and decrypts the stored payload. Its first
// error sticks, so the Reader can report it even when a decompressor
// replaces it with a complaint of its own.
type storedReader struct {
	src     io.Reader
	stream  cipher.Stream
	sum     hash.Hash
	left    int64 // stored bytes not yet read
	wantSum []byte
	checked bool // stored digest verified
	done    bool // trailing-data check made
	err     error
}

func (s *storedReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

func (s *storedReader) read(p []byte) (int, error) {
	if s.left == 0 {
		if err := s.check(); err != nil {
			return 0, err
		}
		if !s.done {
			s.done = true
			// The payload must end exactly where the header says.
			var one [1]byte
			if n, _ := io.ReadFull(s.src, one[:]); n > 0 {
				return 0, ErrTrailingData
			}
		}
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.src.Read(p)
	s.left -= int64(n)
	s.sum.Write(p[:n])
	if s.stream != nil {
		s.stream.XORKeyStream(p[:n], p[:n])
	}
	if s.left == 0 {
		// The whole stored payload has been seen: check it before the
		// last bytes are handed on.
		if err := s.check(); err != nil {
			return 0, err
		}
		return n, nil
	}
	if err == io.EOF {
		return n, fmt.Errorf("%w: payload ends %d bytes early", ErrTruncated, s.left)
	}
	return n, err
}

func (s *storedReader) check() error {
	if !s.checked {
		if !bytes.Equal(s.sum.Sum(nil), s.wantSum) {
			return ErrStoredDigest
		}
		s.checked = true
	}
	return nil
}

// NewReader reads the header from r and returns a Reader of the plaintext
// payload. key decrypts an encrypted package and must be nil otherwise.
func NewReader(r io.Reader, key []byte) (*Reader, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	var stream cipher.Stream
	if ks := h.Encryption.KeySize(); ks != 0 {
		if key == nil {
			return nil, fmt.Errorf("%w: package is encrypted with %s; a key is needed", ErrKey, h.Encryption)
		}
		if len(key) != ks {
			return nil, fmt.Errorf("%w: %s needs a %d-byte key, got %d bytes", ErrKey, h.Encryption, ks, len(key))
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		stream = cipher.NewCTR(block, h.Nonce[:])
	}
	sr := &storedReader{src: r, stream: stream, sum: sha256.New(), left: h.StoredSize, wantSum: h.StoredSHA256[:]}
	c, err := codec.ByID(h.Compression)
	if err != nil {
		return nil, err
	}
	zr, err := c.NewReader(sr)
	if err != nil {
		return nil, fmt.Errorf("update: payload: %w", firstErr(err, sr))
	}
	return &Reader{hdr: *h, stored: sr, zr: zr, plain: sha256.New()}, nil
}

// firstErr prefers the stored reader's own integrity error over a
// decompressor's complaint about the garbage it caused.
func firstErr(err error, sr *storedReader) error {
	if sr.err != nil {
		return sr.err
	}
	return err
}

// Header returns the package header.
func (r *Reader) Header() *Header { return &r.hdr }

// Read reads plaintext payload bytes.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if left := r.hdr.Size - r.n; int64(len(p)) > left+1 {
		// Read at most one byte past the declared size, to notice a
		// payload that decompresses to more than it should.
		p = p[:left+1]
	}
	n, err := r.zr.Read(p)
	r.n += int64(n)
	if r.n > r.hdr.Size {
		r.err = fmt.Errorf("%w: payload decompresses to more than the declared %d bytes", ErrSize, r.hdr.Size)
		return 0, r.err
	}
	r.plain.Write(p[:n])
	if err == io.EOF {
		err = r.finish()
	} else if err != nil {
		if r.stored.err == nil && r.hdr.Encryption != EncryptNone {
			err = fmt.Errorf("update: payload does not decompress (wrong key?): %w", err)
		} else {
			err = fmt.Errorf("update: payload: %w", firstErr(err, r.stored))
		}
	}
	r.err = err
	return n, err
}

// finish runs the end-of-stream checks, returning io.EOF when all pass.
func (r *Reader) finish() error {
	if r.stored.err != nil {
		return r.stored.err
	}
	// Drain whatever the decompressor left unread so the stored digest and
	// trailing-data checks see every byte.
	if _, err := io.Copy(io.Discard, r.stored); err != nil {
		return err
	}
	if r.stored.err != nil {
		return r.stored.err
	}
	if r.n != r.hdr.Size {
		return fmt.Errorf("%w: got %d bytes, header says %d", ErrSize, r.n, r.hdr.Size)
	}
	if !bytes.Equal(r.plain.Sum(nil), r.hdr.SHA256[:]) {
		if r.hdr.Encryption != EncryptNone {
			return fmt.Errorf("%w (wrong key?)", ErrDigest)
		}
		return ErrDigest
	}
	return io.EOF
}

// CheckStored reads a package from r and checks the stored payload's size
// and SHA-256 against the header without decrypting or decompressing it, as
// a device can before it spends a key or flash writes on a download.
func CheckStored(r io.Reader) (*Header, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	sr := &storedReader{src: r, sum: sha256.New(), left: h.StoredSize, wantSum: h.StoredSHA256[:]}
	if _, err := io.Copy(io.Discard, sr); err != nil {
		return h, err
	}
	return h, nil
}

// Close releases the decompressor. It does not close the underlying reader.
func (r *Reader) Close() error { return r.zr.Close() }
