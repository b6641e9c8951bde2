package chain

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/vigil-auth/vigil/domain"
)

// The export is JSON lines, what `vigil log export` writes and `vigil verify --export` reads:
//
//	{"vigil_log_export":1,"positions":"contiguous"}        the header ("sparse" for KurrentDB)
//	{"checkpoint":{"position":...,"hash":...,...}}          every checkpoint, oldest first
//	{"event":{"id":...,...,"data":{...},"hash":"..."}}      every event, in log order
//	{"end":{"events":N,"checkpoints":M,"head":P}}           the last line
//
// An event's data is written as is when it is compact JSON; otherwise (whitespace that a JSON
// encoder would drop) as "data_base64", so that the bytes hashed are the bytes stored.

// ExportFormat is the header's format number.
const ExportFormat = 1

// MaxExportLine bounds one line of an export (an event holds at most a few MiB).
const MaxExportLine = 64 << 20

type exportHeader struct {
	Format    int    `json:"vigil_log_export"`
	Positions string `json:"positions"` // "contiguous" or "sparse"
}

// ExportEnd is the export's last line: what the file should hold.
type ExportEnd struct {
	Events      uint64 `json:"events"`
	Checkpoints uint64 `json:"checkpoints"`
	Head        uint64 `json:"head"`
}

type exportEvent struct {
	domain.Envelope
	DataBase64 string `json:"data_base64,omitempty"`
}

type exportLine struct {
	Checkpoint *Checkpoint  `json:"checkpoint,omitempty"`
	Event      *exportEvent `json:"event,omitempty"`
	End        *ExportEnd   `json:"end,omitempty"`
}

// ExportWriter writes an export; Close writes the end line.
type ExportWriter struct {
	w   *bufio.Writer
	enc *json.Encoder
	end ExportEnd
	buf bytes.Buffer
}

// NewExportWriter writes the header. contiguous says the log numbers its events 1, 2, 3...
func NewExportWriter(w io.Writer, contiguous bool) (*ExportWriter, error) {
	bw := bufio.NewWriterSize(w, 1<<16)
	x := &ExportWriter{w: bw}
	x.enc = json.NewEncoder(bw)
	x.enc.SetEscapeHTML(false)
	pos := "sparse"
	if contiguous {
		pos = "contiguous"
	}
	return x, x.enc.Encode(exportHeader{Format: ExportFormat, Positions: pos})
}

// Checkpoint writes a checkpoint line; all of them come before the first event.
func (x *ExportWriter) Checkpoint(cp Checkpoint) error {
	x.end.Checkpoints++
	return x.enc.Encode(exportLine{Checkpoint: &cp})
}

// Event writes an event line.
func (x *ExportWriter) Event(e domain.Envelope) error {
	ev := exportEvent{Envelope: e}
	x.buf.Reset()
	if json.Compact(&x.buf, e.Data) != nil || !bytes.Equal(x.buf.Bytes(), e.Data) {
		ev.DataBase64, ev.Data = base64.StdEncoding.EncodeToString(e.Data), nil
	}
	x.end.Events++
	x.end.Head = e.Position
	return x.enc.Encode(exportLine{Event: &ev})
}

// Close writes the end line and flushes.
func (x *ExportWriter) Close() error {
	if err := x.enc.Encode(exportLine{End: &x.end}); err != nil {
		return err
	}
	return x.w.Flush()
}

// ErrExportFormat marks an export that is not well formed.
var ErrExportFormat = errors.New("chain: not a Vigil log export")

// ExportItem is one line of an export after the header: exactly one field is set.
type ExportItem struct {
	Checkpoint *Checkpoint
	Event      *domain.Envelope
	End        *ExportEnd
}

// ExportReader reads an export line by line.
type ExportReader struct {
	r          *bufio.Reader
	line       int
	Contiguous bool
	ended      bool
	sawEvent   bool
}

// NewExportReader reads the header.
func NewExportReader(r io.Reader) (*ExportReader, error) {
	x := &ExportReader{r: bufio.NewReaderSize(r, 1<<16)}
	raw, err := x.readLine()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: the file is empty", ErrExportFormat)
		}
		return nil, err
	}
	var h exportHeader
	if err := json.Unmarshal(raw, &h); err != nil || h.Format != ExportFormat || (h.Positions != "contiguous" && h.Positions != "sparse") {
		return nil, fmt.Errorf("%w: line 1 is not its header", ErrExportFormat)
	}
	x.Contiguous = h.Positions == "contiguous"
	return x, nil
}

// errTruncated is a line cut off by the end of the file.
var errTruncated = errors.New("chain: the export ends in the middle of a line")

func (x *ExportReader) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := x.r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxExportLine {
			return nil, fmt.Errorf("%w: line %d is longer than %d bytes", ErrExportFormat, x.line+1, MaxExportLine)
		}
		switch {
		case err == nil:
			x.line++
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return nil, errTruncated
		default:
			return nil, err
		}
	}
}

// Next returns the next item; io.EOF after the end line, and an error for a line that is
// malformed, cut off, or follows the end line.
func (x *ExportReader) Next() (ExportItem, error) {
	raw, err := x.readLine()
	if err != nil {
		if errors.Is(err, io.EOF) && !x.ended {
			return ExportItem{}, errTruncated
		}
		return ExportItem{}, err
	}
	if x.ended {
		return ExportItem{}, fmt.Errorf("%w: line %d comes after the end line", ErrExportFormat, x.line)
	}
	var l struct {
		Checkpoint *Checkpoint  `json:"checkpoint"`
		Event      *exportEvent `json:"event"`
		End        *ExportEnd   `json:"end"`
	}
	if err := json.Unmarshal(raw, &l); err != nil {
		return ExportItem{}, fmt.Errorf("%w: line %d: %v", ErrExportFormat, x.line, err)
	}
	n := 0
	for _, set := range []bool{l.Checkpoint != nil, l.Event != nil, l.End != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return ExportItem{}, fmt.Errorf("%w: line %d holds no checkpoint, event or end, or more than one", ErrExportFormat, x.line)
	}
	switch {
	case l.Checkpoint != nil:
		if x.sawEvent {
			return ExportItem{}, fmt.Errorf("%w: line %d: a checkpoint after the events", ErrExportFormat, x.line)
		}
		return ExportItem{Checkpoint: l.Checkpoint}, nil
	case l.End != nil:
		x.ended = true
		return ExportItem{End: l.End}, nil
	}
	x.sawEvent = true
	e := l.Event.Envelope
	if l.Event.DataBase64 != "" {
		if e.Data, err = base64.StdEncoding.DecodeString(l.Event.DataBase64); err != nil {
			return ExportItem{}, fmt.Errorf("%w: line %d: data_base64: %v", ErrExportFormat, x.line, err)
		}
	}
	return ExportItem{Event: &e}, nil
}

// VerifyExport checks an export against the trusted keys: every event's hash, every
// checkpoint's signature and hash, and that the file is whole. A tampered or cut export gives
// a *Failure; a file that is not an export another error.
func VerifyExport(r io.Reader, keys KeySet) (Result, error) {
	x, err := NewExportReader(r)
	if err != nil {
		return Result{}, err
	}
	var (
		cps     []Checkpoint
		v       *Verifier
		events  uint64
		lastPos uint64
	)
	for {
		it, err := x.Next()
		if errors.Is(err, errTruncated) {
			if v != nil && v.Failed() {
				return v.Finish()
			}
			return Result{}, &Failure{Position: lastPos + 1, Kind: Missing, Detail: fmt.Sprintf("the export is cut off after position %d (line %d is its last whole line and the end line is missing)", lastPos, x.line)}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Result{}, err
		}
		switch {
		case it.Checkpoint != nil:
			cps = append(cps, *it.Checkpoint)
		case it.Event != nil:
			if v == nil {
				v = NewVerifier(keys, cps, x.Contiguous)
			}
			events++
			lastPos = it.Event.Position
			if v.Wants() {
				v.Event(*it.Event)
			}
		case it.End != nil:
			if v == nil {
				v = NewVerifier(keys, cps, x.Contiguous)
			}
			res, err := v.Finish()
			if err != nil {
				return res, err
			}
			if it.End.Events != events || it.End.Checkpoints != uint64(len(cps)) || it.End.Head != res.Head {
				return Result{}, &Failure{Position: lastPos + 1, Kind: Missing, Detail: fmt.Sprintf(
					"the end line announces %d events and %d checkpoints up to position %d, the export holds %d and %d up to %d",
					it.End.Events, it.End.Checkpoints, it.End.Head, events, len(cps), res.Head)}
			}
			for {
				if _, err := x.Next(); errors.Is(err, io.EOF) {
					return res, nil
				} else if err != nil {
					return Result{}, err
				}
			}
		}
	}
	return Result{}, fmt.Errorf("%w: no end line", ErrExportFormat)
}

// Source is what reading a whole log needs: the events in order, the head and the checkpoints
// (both backends offer it).
type Source interface {
	Log
	ReadAll(ctx context.Context, after uint64, limit int) ([]domain.Envelope, error)
}

// Scan reads a log up to its head at the start (a server may go on appending): every
// checkpoint, then every event up to the head read after the checkpoints, page by page, so
// that in a whole log every checkpoint listed names an event the scan reaches. It returns the
// head it stopped at. checkpoint is called for all checkpoints before event is called for the
// first event; event returning false stops the scan. contiguous says positions are integers
// 1, 2, 3... (SQLite), which lets the scan read ahead in parallel.
func Scan(ctx context.Context, src Source, contiguous bool, checkpoint func(Checkpoint) error, event func(domain.Envelope) (bool, error)) (uint64, error) {
	for after := uint64(0); ; {
		cps, err := src.Checkpoints(ctx, after, 500)
		if err != nil {
			return 0, err
		}
		for _, cp := range cps {
			if err := checkpoint(cp); err != nil {
				return 0, err
			}
			after = cp.Position
		}
		if len(cps) < 500 {
			break
		}
	}
	head, _, err := src.ChainHead(ctx)
	if err != nil {
		return 0, err
	}
	if contiguous {
		return head, scanRanges(ctx, src, head, event)
	}
	for pos := uint64(0); pos < head; {
		evs, err := src.ReadAll(ctx, pos, 4096)
		if err != nil {
			return 0, err
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			if e.Position > head {
				return head, nil
			}
			more, err := event(e)
			if err != nil || !more {
				return head, err
			}
			pos = e.Position
		}
	}
	return head, nil
}

// scanRanges reads a log whose positions are integers in pages of position ranges, two pages at
// a time on separate connections while event consumes them in order: reading rows is most of
// the cost of a verify, and the ranges are known in advance. A range (a, a+n] holds at most n
// events, so ReadAll(a, n) returns all of them (and maybe later ones, left to the next range).
func scanRanges(ctx context.Context, src Source, head uint64, event func(domain.Envelope) (bool, error)) error {
	const page, readers = 4096, 2
	type result struct {
		evs []domain.Envelope
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan chan result, 2*readers)
	go func() {
		defer close(queue)
		sem := make(chan struct{}, readers)
		for a := uint64(0); a < head; a += page {
			ch := make(chan result, 1)
			select {
			case queue <- ch:
			case <-ctx.Done():
				return
			}
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				evs, err := src.ReadAll(ctx, a, page)
				n := len(evs)
				for n > 0 && evs[n-1].Position > a+page {
					n--
				}
				ch <- result{evs[:n], err}
			}()
		}
	}()
	for ch := range queue {
		r := <-ch
		if r.err != nil {
			return r.err
		}
		for _, e := range r.evs {
			if e.Position > head {
				return nil
			}
			if more, err := event(e); err != nil || !more {
				return err
			}
		}
	}
	return nil
}

// VerifyLog verifies a whole log as Scan reads it.
func VerifyLog(ctx context.Context, src Source, keys KeySet, contiguous bool) (Result, error) {
	var cps []Checkpoint
	var v *Verifier
	_, err := Scan(ctx, src, contiguous, func(cp Checkpoint) error {
		cps = append(cps, cp)
		return nil
	}, func(e domain.Envelope) (bool, error) {
		if v == nil {
			v = NewVerifier(keys, cps, contiguous)
		}
		v.Event(e)
		return v.Wants(), nil
	})
	if err != nil {
		return Result{}, err
	}
	if v == nil {
		v = NewVerifier(keys, cps, contiguous)
	}
	return v.Finish()
}
