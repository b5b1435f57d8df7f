// Package agent is the device side of an over-the-air update: it checks a
// server for an offer, downloads the artifact with resume, verifies the
// manifest and the image, writes a full image or a streamed delta into the
// secondary slot, marks it for a test boot, and after the reset waits for the
// application to confirm the new image, reverting it when no confirmation
// comes before the deadline.
//
// The agent walks the nine states of the update lifecycle
//
//	IDLE → DOWNLOADING → VERIFYING → APPLYING → PENDING_REBOOT → TESTING → CONFIRMED
//
// with REVERTING and FAILED on the side. Only the transitions in the table of
// state.go are legal, and every transition is saved through a StateStore before
// its effect happens, so a device that loses power at any point resumes from a
// state that describes what may have been done.
//
// The agent depends on small interfaces rather than concrete packages: Slots
// (the two firmware slots and the boot switch: MCUboot flash or Linux files),
// Server (check-in, download, status reports), ManifestVerifier,
// ImageVerifier and Patcher. Implementations live in this package
// (LinuxSlots, HTTPServer, FileStore) or adapt otakit's other packages.
package agent
