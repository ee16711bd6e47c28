package ctf

import (
	"fmt"
	"os"
	"path/filepath"
)

// MaxStreams bounds the number of stream files of one [Dir], so that a
// hostile ring cannot make a consumer create files without end.
const MaxStreams = 4096

// Dir writes a CTF trace directory: a "metadata" file and one stream file
// per ring shard ("stream_<shard>") holding that shard's packets back to
// back, unchanged.
type Dir struct {
	path  string
	files map[int]*os.File
}

// CreateDir makes the directory (and parents) and writes the metadata.
func CreateDir(path, metadata string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("create trace directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(path, "metadata"), []byte(metadata), 0o644); err != nil {
		return nil, fmt.Errorf("write trace metadata: %w", err)
	}
	return &Dir{path: path, files: make(map[int]*os.File)}, nil
}

// Path returns the trace directory.
func (d *Dir) Path() string { return d.path }

// WritePacket appends a packet to the stream file of the given shard.
func (d *Dir) WritePacket(shard int, pkt []byte) error {
	f := d.files[shard]
	if f == nil {
		if shard < 0 || shard >= MaxStreams {
			return fmt.Errorf("write packet: shard %d out of range [0, %d)", shard, MaxStreams)
		}
		var err error
		f, err = os.OpenFile(filepath.Join(d.path, fmt.Sprintf("stream_%d", shard)), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("write packet: %w", err)
		}
		d.files[shard] = f
	}
	if _, err := f.Write(pkt); err != nil {
		return fmt.Errorf("write packet: %w", err)
	}
	return nil
}

// Close closes the stream files.
func (d *Dir) Close() error {
	var first error
	for _, f := range d.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	d.files = nil
	return first
}
