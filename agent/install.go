package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// CheckIn asks the server for an update and installs it up to
// PENDING_REBOOT. It returns false when there is no update.
func (a *Agent) CheckIn(ctx context.Context) (bool, error) {
	if a.cfg.Server == nil {
		return false, errors.New("agent: no server configured")
	}
	a.mu.Lock()
	info, err := a.running()
	if err != nil {
		a.mu.Unlock()
		return false, err
	}
	dev := a.cfg.Device
	dev.Version = info.Version
	a.mu.Unlock()
	offer, err := a.cfg.Server.CheckIn(ctx, dev)
	if err != nil || offer == nil {
		return false, err
	}
	return a.Install(ctx, offer)
}

// Install verifies the offer's manifest, downloads the best artifact for
// this device (resuming a partial download of the same artifact), verifies
// and applies it to the secondary slot and marks it for a test boot. It
// returns false when the offer is the running version.
func (a *Agent) Install(ctx context.Context, offer *Offer) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cfg.Manifests == nil {
		return false, errors.New("agent: no manifest verifier configured")
	}
	switch a.rec.State {
	case Idle, Failed, Confirmed, Downloading:
	default:
		return false, fmt.Errorf("%w (state %s)", ErrBusy, a.rec.State)
	}
	running, err := a.running()
	if err != nil {
		return false, err
	}
	dev := a.cfg.Device
	dev.Version = running.Version
	// A refused offer is not an attempt: the state (and a partial download
	// of an accepted release) stays as it is, and nothing is written, so a
	// hostile or stale server cannot wear the flash out poll after poll.
	rel, err := a.cfg.Manifests.VerifyManifest(offer.Manifest, dev, a.rec.Sequence)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	if sameVersion(rel.Version, running.Version) {
		return false, nil
	}
	if a.rec.State == Failed && sameVersion(a.rec.Version, rel.Version) && rel.Sequence <= a.rec.Sequence {
		// This release already failed here (refused, or reverted): do not
		// loop on it; a newer manifest gets a new attempt.
		return false, nil
	}
	art, err := a.choose(rel, offer, running.Version)
	if err != nil {
		return false, err
	}
	if offer.ArtifactURL != "" && (art.Name == offer.Artifact || art.URL == offer.Artifact) {
		art.URL = offer.ArtifactURL
	}
	if art.URL, err = resolveURL(offer.BaseURL, art.URL); err != nil {
		return false, err
	}
	old := a.rec.Artifact
	resume := a.rec.State == Downloading && old != nil && sameVersion(a.rec.Version, rel.Version) &&
		old.Name == art.Name && bytes.Equal(old.SHA256, art.SHA256) && old.Size == art.Size
	if err := a.transition(Downloading, func(r *Record) {
		r.Version, r.Previous, r.Artifact = rel.Version, running.Version, &art
		r.Sequence = max(r.Sequence, rel.Sequence)
		r.Deployment = offer.Deployment
		r.Error = ""
		if !resume {
			r.Offset, r.ETag = 0, ""
		}
	}); err != nil {
		return false, err
	}
	if !resume {
		os.Remove(a.partialPath())
	}
	if err := a.download(ctx); err != nil {
		return false, err
	}
	return true, a.finishFromDownload(running)
}

// choose picks the artifact: the server's pick if it names one of the
// manifest's files, else a delta from the running version, else the full
// image.
func (a *Agent) choose(rel *Release, offer *Offer, running string) (Artifact, error) {
	if offer.Artifact != "" {
		for _, art := range rel.Artifacts {
			if art.Name == offer.Artifact || art.URL == offer.Artifact {
				if art.Type == TypeDelta && (a.cfg.Patcher == nil || !sameVersion(art.Base, running)) {
					break
				}
				if art.URL == "" {
					art.URL = art.Name
				}
				return art, nil
			}
		}
	}
	var full *Artifact
	for i, art := range rel.Artifacts {
		if art.URL == "" {
			art.URL = art.Name
		}
		switch art.Type {
		case TypeDelta:
			if a.cfg.Patcher != nil && sameVersion(art.Base, running) {
				return art, nil
			}
		case TypeFull:
			if full == nil {
				full = &rel.Artifacts[i]
				full.URL = art.URL
			}
		}
	}
	if full == nil {
		return Artifact{}, fmt.Errorf("%w (running %s, release %s)", ErrNoArtifact, running, rel.Version)
	}
	return *full, nil
}

// InstallFile installs a local image or update package without a
// manifest: the image's own signature and security counter are checked.
func (a *Agent) InstallFile(ctx context.Context, path string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch a.rec.State {
	case Idle, Failed, Confirmed:
	default:
		return fmt.Errorf("%w (state %s)", ErrBusy, a.rec.State)
	}
	running, err := a.running()
	if err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("agent: install: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("agent: install: %w", err)
	}
	u := (&url.URL{Scheme: "file", Path: abs}).String()
	art := Artifact{Name: filepath.Base(path), URL: u, Size: fi.Size()}
	if err := a.transition(Downloading, func(r *Record) {
		r.Version, r.Previous, r.Artifact = "", running.Version, &art
		r.Offset, r.ETag, r.Error = 0, "", ""
	}); err != nil {
		return err
	}
	os.Remove(a.partialPath())
	if err := a.download(ctx); err != nil {
		return err
	}
	return a.finishFromDownload(running)
}

// Resume continues an interrupted download (state DOWNLOADING) from its
// persisted offset, then verifies and applies it.
func (a *Agent) Resume(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rec.State != Downloading || a.rec.Artifact == nil {
		return fmt.Errorf("agent: nothing to resume (state %s)", a.rec.State)
	}
	running, err := a.running()
	if err != nil {
		return err
	}
	if err := a.download(ctx); err != nil {
		return err
	}
	return a.finishFromDownload(running)
}

func (a *Agent) finishFromDownload(running ImageInfo) error {
	if err := a.transition(Verifying, nil); err != nil {
		return err
	}
	return a.finish(running)
}

// fetch opens the artifact at offset: file URLs locally, others through
// the server.
func (a *Agent) fetch(ctx context.Context, off int64) (*DownloadResponse, error) {
	art := a.rec.Artifact
	if u, err := url.Parse(art.URL); err == nil && u.Scheme == "file" {
		f, err := os.Open(u.Path)
		if err != nil {
			return nil, fmt.Errorf("agent: open %s: %w", u.Path, err)
		}
		fi, err := f.Stat()
		if err == nil {
			_, err = f.Seek(off, io.SeekStart)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("agent: open %s: %w", u.Path, err)
		}
		return &DownloadResponse{Body: f, Offset: off, Total: fi.Size()}, nil
	}
	if a.cfg.Server == nil {
		return nil, fmt.Errorf("agent: no server to download %s from", art.URL)
	}
	return a.cfg.Server.Download(ctx, art.URL, off, a.rec.ETag)
}

// download fetches the artifact into the partial file, resuming from the
// persisted offset, retrying after drops, and persisting the offset every
// CheckpointBytes (after syncing the data it covers).
func (a *Agent) download(ctx context.Context) error {
	art := a.rec.Artifact
	f, err := os.OpenFile(a.partialPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("agent: partial download: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("agent: partial download: %w", err)
	}
	off, etag := a.rec.Offset, a.rec.ETag
	if fi.Size() < off || off < 0 || (art.Size > 0 && off > art.Size) {
		off, etag = 0, "" // the partial file lost data: start over
	}
	if err := f.Truncate(off); err != nil {
		return fmt.Errorf("agent: partial download: %w", err)
	}
	a.speedStart, a.speedBytes = a.cfg.Clock.Now(), 0
	checkpoint := func() error {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("agent: partial download: %w", err)
		}
		return a.transition(Downloading, func(r *Record) { r.Offset, r.ETag = off, etag })
	}
	buf := make([]byte, 32<<10)
	failures := 0
	var lastErr error
	for art.Size <= 0 || off < art.Size {
		if failures > a.cfg.MaxRetries {
			return fmt.Errorf("%w after %d attempts without progress: %w", ErrBadDownload, failures, lastErr)
		}
		if failures > 0 && a.cfg.RetryDelay > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-a.cfg.Clock.After(a.cfg.RetryDelay):
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// A connection that stalls without closing is cut after
		// StallTimeout without a byte, and resumed like a drop.
		reqCtx, cancelReq := context.WithCancel(ctx)
		stall := time.AfterFunc(a.cfg.StallTimeout, cancelReq)
		resp, err := a.fetch(reqCtx, off)
		if err != nil {
			stall.Stop()
			cancelReq()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failures++
			lastErr = err
			a.cfg.Logger.Warn("ota download", "offset", off, "error", err)
			continue
		}
		body := resp.Body
		resp.Body = closeFunc{body, func() error {
			stall.Stop()
			err := body.Close()
			cancelReq()
			return err
		}}
		if resp.Offset != off {
			if resp.Offset != 0 {
				resp.Body.Close()
				return fmt.Errorf("%w: asked for offset %d, got %d", ErrServer, off, resp.Offset)
			}
			// The file changed or ranges are not served: start over.
			off = 0
			if err := f.Truncate(0); err != nil {
				resp.Body.Close()
				return fmt.Errorf("agent: partial download: %w", err)
			}
		}
		if resp.ETag != "" {
			etag = resp.ETag
		}
		if resp.Total >= 0 && art.Size > 0 && resp.Total != art.Size {
			resp.Body.Close()
			return a.fail(fmt.Errorf("%w: %s is %d bytes, the manifest says %d", ErrDigest, art.Name, resp.Total, art.Size))
		}
		if art.Size <= 0 && resp.Total >= 0 {
			art.Size = resp.Total
		}
		start := off
		sinceCheckpoint := int64(0)
		var rerr error
		for {
			stall.Reset(a.cfg.StallTimeout)
			n, err := resp.Body.Read(buf)
			stall.Stop() // local writes and checkpoints do not count as a stall
			if n > 0 {
				if art.Size > 0 && off+int64(n) > art.Size {
					resp.Body.Close()
					return a.fail(fmt.Errorf("%w: %s is longer than %d bytes", ErrDigest, art.Name, art.Size))
				}
				if _, werr := f.WriteAt(buf[:n], off); werr != nil {
					resp.Body.Close()
					return fmt.Errorf("agent: partial download: %w", werr)
				}
				off += int64(n)
				a.received += int64(n)
				a.speedBytes += int64(n)
				a.rec.Offset = off // for progress; persisted at checkpoints
				sinceCheckpoint += int64(n)
				if sinceCheckpoint >= a.cfg.CheckpointBytes {
					sinceCheckpoint = 0
					if err := checkpoint(); err != nil {
						resp.Body.Close()
						return err
					}
				}
				a.progress()
			}
			if err == nil && ctx.Err() != nil {
				err = ctx.Err() // stop now, even if the body is already buffered
			}
			if err != nil {
				if err != io.EOF {
					rerr = err
				}
				break
			}
		}
		resp.Body.Close()
		if err := checkpoint(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if rerr == nil && art.Size <= 0 {
			break // unknown length: EOF ends it
		}
		if off > start {
			failures = 0
		}
		if rerr != nil {
			failures++
			lastErr = rerr
			a.cfg.Logger.Warn("ota download interrupted", "offset", off, "error", rerr)
		} else if off < art.Size {
			failures++
			lastErr = io.ErrUnexpectedEOF
		}
	}
	return nil
}

// progress reports download progress when the percentage changed.
func (a *Agent) progress() {
	st := a.status()
	if st.Progress == a.lastPercent {
		return
	}
	a.lastPercent = st.Progress
	a.report(st.Progress%10 == 0)
}

// finish verifies the downloaded artifact and applies it: state VERIFYING
// on entry, PENDING_REBOOT or FAILED on return.
func (a *Agent) finish(running ImageInfo) error {
	art := a.rec.Artifact
	if art == nil {
		return a.fail(errors.New("agent: no artifact recorded"))
	}
	payload, err := a.verifyArtifact(art, running)
	if err != nil {
		return a.fail(err)
	}
	if err := a.transition(Applying, nil); err != nil {
		return err
	}
	if err := a.apply(payload, running); err != nil {
		return a.fail(err)
	}
	// PENDING_REBOOT is recorded before the slot is marked: a reset between
	// the two finds an unmarked slot and ends in FAILED, never in an
	// APPLYING state whose redo would overwrite the slot a trial boot
	// reverts to.
	if err := a.transition(PendingReboot, nil); err != nil {
		return err
	}
	if err := a.cfg.Slots.MarkTest(); err != nil {
		return a.fail(err)
	}
	os.Remove(a.partialPath())
	return nil
}

// payload is an artifact ready to apply.
type payload struct {
	path string
	typ  string
}

// verifyArtifact checks the download's size and digest against the
// manifest, unpacks it, and for a full image verifies its signature and
// security counter, all before anything is written to a slot.
func (a *Agent) verifyArtifact(art *Artifact, running ImageInfo) (payload, error) {
	f, err := os.Open(a.partialPath())
	if err != nil {
		return payload{}, fmt.Errorf("agent: downloaded artifact: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return payload{}, fmt.Errorf("agent: downloaded artifact: %w", err)
	}
	if art.Size > 0 && fi.Size() != art.Size {
		return payload{}, fmt.Errorf("%w: %s has %d bytes, expected %d", ErrDigest, art.Name, fi.Size(), art.Size)
	}
	if len(art.SHA256) > 0 {
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return payload{}, fmt.Errorf("agent: downloaded artifact: %w", err)
		}
		if !bytes.Equal(h.Sum(nil), art.SHA256) {
			return payload{}, fmt.Errorf("%w: SHA-256 of %s is %x, the manifest says %x", ErrDigest, art.Name, h.Sum(nil), art.SHA256)
		}
	}
	p := payload{path: a.partialPath(), typ: art.Type}
	if a.cfg.Unpacker != nil {
		rc, info, err := a.cfg.Unpacker.Unpack(f, fi.Size())
		switch {
		case errors.Is(err, ErrNotPackage):
		case err != nil:
			return payload{}, fmt.Errorf("agent: unpack %s: %w", art.Name, err)
		default:
			err := writeFile(a.payloadPath(), rc)
			rc.Close()
			if err != nil {
				return payload{}, fmt.Errorf("agent: unpack %s: %w", art.Name, err)
			}
			if p.typ != "" && info.Type != p.typ {
				return payload{}, fmt.Errorf("%w: %s holds a %s payload, the manifest says %s", ErrImage, art.Name, info.Type, p.typ)
			}
			p = payload{path: a.payloadPath(), typ: info.Type}
		}
	}
	if p.typ == "" {
		p.typ = TypeFull
	}
	if p.typ == TypeDelta {
		if a.cfg.Patcher == nil {
			return payload{}, fmt.Errorf("%w: %s is a delta and this agent has no patcher", ErrImage, art.Name)
		}
		return p, nil // verified as an image once applied, before it is marked
	}
	img, err := os.Open(p.path)
	if err != nil {
		return payload{}, err
	}
	defer img.Close()
	ifi, err := img.Stat()
	if err != nil {
		return payload{}, err
	}
	info, err := a.cfg.Images.VerifyImage(img, ifi.Size())
	if err != nil {
		return payload{}, fmt.Errorf("%w: %w", ErrImage, err)
	}
	return p, a.checkImage(info)
}

// checkImage applies the version and anti-rollback rules to a verified image.
func (a *Agent) checkImage(info ImageInfo) error {
	if a.rec.Version != "" && !sameVersion(info.Version, a.rec.Version) {
		return fmt.Errorf("%w: image is %s, the manifest says %s", ErrImage, info.Version, a.rec.Version)
	}
	counter, err := a.cfg.Slots.Counter()
	if err != nil {
		return err
	}
	if info.SecurityCounter < counter {
		return fmt.Errorf("%w: %s has security counter %d, the device requires at least %d", ErrDowngrade, info.Version, info.SecurityCounter, counter)
	}
	if a.rec.Version == "" {
		a.rec.Version = info.Version // local install: the image names itself
	}
	return nil
}

// apply writes the payload into the secondary slot, then verifies the
// slot's image.
func (a *Agent) apply(p payload, running ImageInfo) error {
	src, err := os.Open(p.path)
	if err != nil {
		return err
	}
	defer src.Close()
	w, err := a.cfg.Slots.WriteSecondary()
	if err != nil {
		return err
	}
	if p.typ == TypeDelta {
		prim, _, err := a.cfg.Slots.Primary()
		if err != nil {
			w.Close()
			return err
		}
		err = a.cfg.Patcher.Patch(w, prim, running.Size, src)
		closeReader(prim)
		if err != nil {
			w.Close()
			return fmt.Errorf("%w: delta: %w", ErrImage, err)
		}
	} else if _, err := io.Copy(w, src); err != nil {
		w.Close()
		return fmt.Errorf("agent: write secondary slot: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("agent: write secondary slot: %w", err)
	}
	r, size, err := a.cfg.Slots.Secondary()
	if err != nil {
		return err
	}
	info, err := a.cfg.Images.VerifyImage(r, size)
	closeReader(r)
	if err != nil {
		return fmt.Errorf("%w: secondary slot: %w", ErrImage, err)
	}
	if err := a.checkImage(info); err != nil {
		return err
	}
	os.Remove(a.payloadPath())
	return nil
}

// closeFunc is a reader with its own Close.
type closeFunc struct {
	io.Reader
	close func() error
}

func (c closeFunc) Close() error { return c.close() }

func writeFile(path string, r io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
