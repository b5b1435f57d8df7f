package mcuboot

import (
	"encoding/binary"
	"fmt"
)

// Software component property keys of the PSA attestation boot record.
const (
	swType                  = 1
	swMeasurementValue      = 2
	swVersion               = 4
	swSignerID              = 5
	swMeasurementDescriptor = 6
)

// bootRecord encodes the CBOR map imgtool writes into BOOT_RECORD, in its
// key order: type, version, signer id, measurement description and, last
// because the bootloader overwrites it, the (zero) measurement value.
func bootRecord(sw string, v Version, hashName string, measurement, signerID []byte) []byte {
	b := []byte{0xa5} // map of 5 pairs
	b = cborHead(b, 0, swType)
	b = cborText(b, sw)
	b = cborHead(b, 0, swVersion)
	b = cborText(b, fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Revision))
	b = cborHead(b, 0, swSignerID)
	b = cborBytes(b, signerID)
	b = cborHead(b, 0, swMeasurementDescriptor)
	b = cborText(b, hashName)
	b = cborHead(b, 0, swMeasurementValue)
	return cborBytes(b, measurement)
}

// cborHead appends a CBOR initial byte and argument in the shortest form.
func cborHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), n)
}

func cborText(b []byte, s string) []byte  { return append(cborHead(b, 3, uint64(len(s))), s...) }
func cborBytes(b []byte, v []byte) []byte { return append(cborHead(b, 2, uint64(len(v))), v...) }
