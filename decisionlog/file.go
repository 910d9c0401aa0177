package decisionlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
)

// JSONLines writes records as JSON lines to w (stdout). Close does not close w.
type JSONLines struct {
	w   io.Writer
	buf bytes.Buffer
}

// NewJSONLines is a Sink writing to w.
func NewJSONLines(w io.Writer) *JSONLines { return &JSONLines{w: w} }

func (s *JSONLines) Write(_ context.Context, batch []*Record) error {
	s.buf.Reset()
	if err := encode(&s.buf, batch); err != nil {
		return err
	}
	_, err := s.w.Write(s.buf.Bytes())
	return err
}

func (s *JSONLines) Close() error { return nil }

func encode(buf *bytes.Buffer, batch []*Record) error {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	for _, r := range batch {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// File is a Sink of JSON lines in a file that is rotated when it would grow past MaxBytes: PATH is renamed
// PATH.1, PATH.1 PATH.2 and so on, and the oldest beyond Keep is deleted. A batch is never split across files.
type File struct {
	path     string
	maxBytes int64
	keep     int
	f        *os.File
	size     int64
	buf      bytes.Buffer
}

// OpenFile opens (or creates) path for appending, so that a path that cannot be written is known at start.
// maxBytes <= 0 never rotates; keep is how many rotated files stay besides path.
func OpenFile(path string, maxBytes int64, keep int) (*File, error) {
	if keep < 0 {
		return nil, fmt.Errorf("decision log %s: keep %d must not be negative", path, keep)
	}
	s := &File{path: path, maxBytes: maxBytes, keep: keep}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *File) open() error {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("decision log: %w", err) // *PathError: names the path
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("decision log: %w", err)
	}
	s.f, s.size = f, st.Size()
	return nil
}

func (s *File) Write(_ context.Context, batch []*Record) error {
	s.buf.Reset()
	if err := encode(&s.buf, batch); err != nil {
		return err
	}
	if s.f == nil { // a rotation failed: try again
		if err := s.open(); err != nil {
			return err
		}
	}
	if s.maxBytes > 0 && s.size > 0 && s.size+int64(s.buf.Len()) > s.maxBytes {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	n, err := s.f.Write(s.buf.Bytes())
	s.size += int64(n)
	if err != nil {
		return fmt.Errorf("decision log: %w", err)
	}
	return nil
}

// rotate shifts PATH.i to PATH.i+1 (dropping PATH.keep) and PATH to PATH.1, then starts a new PATH.
func (s *File) rotate() error {
	if err := s.f.Close(); err != nil {
		s.f = nil
		return fmt.Errorf("decision log: %w", err)
	}
	s.f = nil
	if s.keep == 0 {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("decision log: %w", err)
		}
		return s.open()
	}
	_ = os.Remove(s.rotated(s.keep))
	for i := s.keep - 1; i >= 1; i-- {
		if err := os.Rename(s.rotated(i), s.rotated(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("decision log: %w", err)
		}
	}
	if err := os.Rename(s.path, s.rotated(1)); err != nil {
		return fmt.Errorf("decision log: %w", err)
	}
	return s.open()
}

func (s *File) rotated(i int) string { return s.path + "." + strconv.Itoa(i) }

func (s *File) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// ReadFiles reads a file log: PATH and whatever rotated files PATH.1, PATH.2, … exist, and returns the records q
// selects, newest first. Lines that are not records (a torn last line after a crash) are skipped.
func ReadFiles(path string, q Query) ([]*Record, error) {
	paths := []string{path}
	for i := 1; ; i++ {
		p := path + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err != nil {
			break
		}
		paths = append(paths, p)
	}
	var out []*Record
	found := false
	for _, p := range paths {
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		found = true
		var recs []*Record
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
		for sc.Scan() {
			r := &Record{}
			if json.Unmarshal(sc.Bytes(), r) != nil || r.DecisionID == "" {
				continue
			}
			if q.Match(r) {
				recs = append(recs, r)
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		slices.Reverse(recs) // each file is oldest first; the files are newest first
		out = append(out, recs...)
		if q.Limit > 0 && len(out) >= q.Limit {
			return out[:q.Limit], nil
		}
	}
	if !found {
		return nil, fmt.Errorf("decision log %s: %w", path, os.ErrNotExist)
	}
	return out, nil
}
