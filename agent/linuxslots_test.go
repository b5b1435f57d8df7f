package agent

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newLinuxSlots makes slot files A (holding a) and B (empty) and a hook
// script that appends "ACTION SLOT" lines to a log.
func newLinuxSlots(t *testing.T, a []byte) (*LinuxSlots, string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "hook.log")
	hook := filepath.Join(dir, "hook.sh")
	script := "#!/bin/sh\necho \"$OTA_ACTION $1\" >> " + log + "\n"
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ls := &LinuxSlots{A: filepath.Join(dir, "slot-a.img"), B: filepath.Join(dir, "slot-b.img"),
		StatePath: filepath.Join(dir, "slots.json"), Hook: []string{hook}}
	if err := os.WriteFile(ls.A, a, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ls.B, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return ls, log
}

func readSlot(t *testing.T, open func() (io.ReaderAt, int64, error)) []byte {
	t.Helper()
	r, n, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer closeReader(r)
	b := make([]byte, n)
	if _, err := r.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b
}

func TestLinuxSlotsCycle(t *testing.T) {
	ls, log := newLinuxSlots(t, []byte("old image"))
	write := func(b []byte) {
		w, err := ls.WriteSecondary()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	active := func(want string, confirmed bool) {
		t.Helper()
		got, err := ls.Active()
		bi, err2 := ls.Boot()
		if err != nil || err2 != nil || got != want || bi.Confirmed != confirmed {
			t.Fatalf("active %s confirmed %v (%v, %v); want %s %v", got, bi.Confirmed, err, err2, want, confirmed)
		}
	}

	// Update, trial boot, confirm.
	write([]byte("new image"))
	if err := ls.MarkTest(); err != nil {
		t.Fatal(err)
	}
	active("A", true)
	if err := ls.Reset(); err != nil {
		t.Fatal(err)
	}
	active("B", false)
	if got := readSlot(t, ls.Primary); string(got) != "new image" {
		t.Fatalf("primary after switch = %q", got)
	}
	if _, err := ls.WriteSecondary(); err == nil {
		t.Fatal("writing the other slot during a trial succeeded")
	}
	if err := ls.Confirm(); err != nil {
		t.Fatal(err)
	}
	if err := ls.Reset(); err != nil {
		t.Fatal(err)
	}
	active("B", true)

	// Update again, trial boot, no confirmation: the next reset reverts.
	write([]byte("newer, bad image"))
	if err := ls.MarkTest(); err != nil {
		t.Fatal(err)
	}
	ls.Reset()
	active("A", false)
	ls.Reset()
	active("B", true)
	if got := readSlot(t, ls.Primary); string(got) != "new image" {
		t.Fatalf("primary after revert = %q", got)
	}

	// A pending trial can be cancelled.
	ls.MarkTest()
	ls.CancelTest()
	ls.Reset()
	active("B", true)

	b, _ := os.ReadFile(log)
	want := "test B\nconfirm B\ntest A\nrevert B\ntest A\ncancel A\n"
	if string(b) != want {
		t.Errorf("hook calls:\n%s\nwant:\n%s", b, want)
	}

	// Counter only goes up.
	ls.SetCounter(5)
	ls.SetCounter(3)
	if c, _ := ls.Counter(); c != 5 {
		t.Errorf("counter = %d, want 5", c)
	}
}

func TestLinuxSlotsErrors(t *testing.T) {
	ls, _ := newLinuxSlots(t, []byte("x"))
	ls.SlotSize = 4
	w, err := ls.WriteSecondary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(bytes.Repeat([]byte{1}, 5)); !errors.Is(err, ErrSlotFull) {
		t.Errorf("oversized write: %v, want ErrSlotFull", err)
	}
	w.Close()

	for name, body := range map[string]string{
		"garbage":      "{{",
		"bad slot":     `{"active":"C"}`,
		"trial no way": `{"active":"A","trial":true}`,
	} {
		os.WriteFile(ls.StatePath, []byte(body), 0o644)
		if _, err := ls.Boot(); !errors.Is(err, ErrSlotState) {
			t.Errorf("%s: %v, want ErrSlotState", name, err)
		}
	}

	ls2, _ := newLinuxSlots(t, []byte("x"))
	ls2.Hook = []string{"/bin/sh", "-c", "echo refused >&2; exit 3", "hook"}
	if err := ls2.MarkTest(); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("failing hook: %v, want its output in the error", err)
	}
}
