package delta

import (
	"bytes"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/otakit/otakit/codec"
	"github.com/ulikunitz/xz/lzma"
)

// compressBlock compresses one block as a complete stream of codec c. For
// zstd and lzma it sizes the encoder to the block instead of using the
// codec package's general-purpose writer (which allocates an 8 MiB lzma
// dictionary or fresh zstd tables per stream); the bytes are the same
// standard formats, read back by codec's readers.
func compressBlock(c codec.Codec, plain []byte) ([]byte, error) {
	switch c.ID() {
	case codec.Zstd:
		return zstdEncoder().EncodeAll(plain, nil), nil
	case codec.LZMA:
		var buf bytes.Buffer
		w, err := lzma.WriterConfig{DictCap: max(1<<12, len(plain))}.NewWriter(&buf)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(plain); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	var buf bytes.Buffer
	w, err := c.NewWriter(&buf)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic(err) // only for invalid options
	}
	return e
})
