package codec

import (
	"bufio"
	"compress/flate"
	"io"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz/lzma"
)

func init() {
	Register(noneCodec{})
	Register(lz4Codec{})
	Register(zlibCodec{})
	Register(lzmaCodec{})
	Register(zstdCodec{})
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

type noneCodec struct{}

func (noneCodec) ID() ID                                        { return None }
func (noneCodec) Name() string                                  { return "none" }
func (noneCodec) NewWriter(w io.Writer) (io.WriteCloser, error) { return nopWriteCloser{w}, nil }
func (noneCodec) NewReader(r io.Reader) (io.ReadCloser, error)  { return io.NopCloser(r), nil }

type lz4Codec struct{}

func (lz4Codec) ID() ID       { return LZ4 }
func (lz4Codec) Name() string { return "lz4" }
func (lz4Codec) NewWriter(w io.Writer) (io.WriteCloser, error) {
	zw := lz4.NewWriter(w)
	if err := zw.Apply(lz4.CompressionLevelOption(lz4.Level9), lz4.ChecksumOption(true)); err != nil {
		return nil, err
	}
	return zw, nil
}
func (lz4Codec) NewReader(r io.Reader) (io.ReadCloser, error) {
	return io.NopCloser(lz4.NewReader(r)), nil
}

type zlibCodec struct{}

func (zlibCodec) ID() ID       { return Zlib }
func (zlibCodec) Name() string { return "zlib" }
func (zlibCodec) NewWriter(w io.Writer) (io.WriteCloser, error) {
	return zlib.NewWriterLevel(w, flate.BestCompression)
}
func (zlibCodec) NewReader(r io.Reader) (io.ReadCloser, error) {
	return zlib.NewReader(r)
}

type lzmaCodec struct{}

func (lzmaCodec) ID() ID       { return LZMA }
func (lzmaCodec) Name() string { return "lzma" }
func (lzmaCodec) NewWriter(w io.Writer) (io.WriteCloser, error) {
	return lzma.NewWriter(w)
}
func (lzmaCodec) NewReader(r io.Reader) (io.ReadCloser, error) {
	zr, err := lzma.NewReader(bufio.NewReader(r))
	if err != nil {
		return nil, err
	}
	return io.NopCloser(zr), nil
}

type zstdCodec struct{}

func (zstdCodec) ID() ID       { return Zstd }
func (zstdCodec) Name() string { return "zstd" }
func (zstdCodec) NewWriter(w io.Writer) (io.WriteCloser, error) {
	return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
}
func (zstdCodec) NewReader(r io.Reader) (io.ReadCloser, error) {
	// Bound the window so a hostile stream cannot demand gigabytes.
	zr, err := zstd.NewReader(r, zstd.WithDecoderMaxWindow(64<<20), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	return zr.IOReadCloser(), nil
}
