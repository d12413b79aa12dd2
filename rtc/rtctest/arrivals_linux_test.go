package rtctest

import (
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cmsg builds one control message as the kernel lays it out.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func timespecBytes(t time.Time) []byte {
	ts := unix.NsecToTimespec(t.UnixNano())
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&ts)), sizeofTimespec)...)
}

// The timestamp is found after other messages, and malformed control
// data gives none rather than a wrong one or a panic.
func TestKernelTimestamp(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	stamp := cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespecBytes(at))
	other := cmsg(unix.IPPROTO_IP, unix.IP_TOS, []byte{0})
	for _, c := range []struct {
		name string
		oob  []byte
		ok   bool
	}{
		{"none", nil, false},
		{"timestamp", stamp, true},
		{"after another message", append(append([]byte(nil), other...), stamp...), true},
		{"another message only", other, false},
		{"truncated header", stamp[:unix.SizeofCmsghdr-1], false},
		{"truncated data", stamp[:len(stamp)-1], false},
		{"short data", cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, []byte{1, 2, 3}), false},
		{"zero length", make([]byte, 64), false},
		{"length past the end", func() []byte {
			b := append([]byte(nil), stamp...)
			(*unix.Cmsghdr)(unsafe.Pointer(&b[0])).SetLen(1000)
			return b
		}(), false},
	} {
		got, ok := kernelTimestamp(c.oob)
		if ok != c.ok || (ok && !got.Equal(at)) {
			t.Errorf("%s: %v %v", c.name, got, ok)
		}
	}
}

func FuzzKernelTimestamp(f *testing.F) {
	f.Add(cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespecBytes(time.Now())))
	f.Add(append(cmsg(unix.IPPROTO_IP, unix.IP_TOS, []byte{0}), cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, []byte{1})...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, oob []byte) {
		kernelTimestamp(oob) // must not panic
	})
}
