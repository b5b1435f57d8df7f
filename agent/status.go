package agent

// Status is a progress report in the updateStatus shape of the device API:
//
//	{"state": "DOWNLOADING", "progress": 42, "version": "1.2.0",
//	 "details": {"bytesReceived": 4200, "totalBytes": 10000, "downloadSpeed": 5120}}
type Status struct {
	State    State   `json:"state"`
	Progress int     `json:"progress"` // percent of the current attempt, 0–100
	Version  string  `json:"version,omitempty"`
	Details  Details `json:"details"`
	// Error says why an attempt failed or was reverted.
	Error string `json:"error,omitempty"`
}

// Details carries the download figures of a Status.
type Details struct {
	BytesReceived int64 `json:"bytesReceived"`
	TotalBytes    int64 `json:"totalBytes"`
	DownloadSpeed int64 `json:"downloadSpeed"` // bytes per second
}

// progressOf maps a state and the download position to a percentage: the
// download is the first 70%, verification and apply the next 25%, and the
// remaining 5% is the confirmed boot.
func progressOf(s State, received, total int64) int {
	switch s {
	case Downloading:
		if total <= 0 {
			return 0
		}
		p := int(received * 70 / total)
		return min(max(p, 0), 70)
	case Verifying:
		return 72
	case Applying:
		return 80
	case PendingReboot:
		return 95
	case Testing:
		return 97
	case Confirmed:
		return 100
	}
	return 0
}
