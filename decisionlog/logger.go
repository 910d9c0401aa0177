package decisionlog

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Logger.
type Options struct {
	// Buffer is how many records may wait for the writer; beyond it records are dropped. 0 means 65536: at
	// 100k decisions/s that is over half a second of a stalled sink, ten flush intervals.
	Buffer int
	// Batch bounds the records of one Sink.Write; 0 means 512.
	Batch int
	// WriteTimeout bounds one Sink.Write (a database that hangs); 0 means 10 s.
	WriteTimeout time.Duration
	// FlushEvery is how often the writer writes what has queued; 0 means 50 ms.
	FlushEvery time.Duration
	Logger     *slog.Logger
}

// Stats counts what a Logger did with the records it was given.
type Stats struct {
	Written uint64
	// Dropped counts records lost because the buffer was full (the sink was slower than the decisions).
	Dropped uint64
	// Failed counts records lost because the sink failed to write them (a full disk, a lost database).
	Failed uint64
}

// Logger writes records to a Sink in the background. Log never blocks. It is safe for concurrent use.
//
// The writer is not woken per record: it sleeps for FlushEvery and then writes whatever has queued. A send to a
// channel whose receiver is parked wakes that goroutine, and one wake-up per decision cost ~40% of groupgate
// bench's throughput on 2 cores (measured); a send into the buffer alone costs a few nanoseconds.
type Logger struct {
	sink    Sink
	opts    Options
	records chan *Record
	closing chan struct{}
	done    chan struct{}
	close   sync.Once
	closed  atomic.Bool

	written, dropped, failed atomic.Uint64
	lastErr                  atomic.Int64 // unix nanoseconds of the last logged write error
}

// New starts a Logger writing to sink. Close it to flush what is buffered and close the sink.
func New(sink Sink, opts Options) *Logger {
	if opts.Buffer <= 0 {
		opts.Buffer = 1 << 16
	}
	if opts.Batch <= 0 {
		opts.Batch = 512
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = 50 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	l := &Logger{sink: sink, opts: opts, records: make(chan *Record, opts.Buffer), closing: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

// Log queues r for writing, or drops and counts it when the buffer is full or the Logger is closed. The Logger
// owns r afterwards.
func (l *Logger) Log(r *Record) {
	if l.closed.Load() {
		l.dropped.Add(1)
		return
	}
	select {
	case l.records <- r:
	default:
		l.dropped.Add(1)
	}
}

// Stats is what happened to the records so far.
func (l *Logger) Stats() Stats {
	return Stats{Written: l.written.Load(), Dropped: l.dropped.Load(), Failed: l.failed.Load()}
}

// Close writes what is buffered, stops the writer and closes the sink. Records logged afterwards are dropped
// (a record racing Close may be lost uncounted: the server has stopped deciding by then).
func (l *Logger) Close() error {
	var err error
	l.close.Do(func() {
		l.closed.Store(true)
		close(l.closing)
		<-l.done
		err = l.sink.Close()
	})
	return err
}

func (l *Logger) run() {
	defer close(l.done)
	tick := time.NewTicker(l.opts.FlushEvery)
	defer tick.Stop()
	batch := make([]*Record, 0, l.opts.Batch)
	for {
		var closing bool
		select {
		case <-tick.C:
		case <-l.closing:
			closing = true
		}
		// Whatever has queued, in batches of at most Batch.
		for {
			batch = batch[:0]
		fill:
			for len(batch) < l.opts.Batch {
				select {
				case r := <-l.records:
					batch = append(batch, r)
				default:
					break fill
				}
			}
			if len(batch) == 0 {
				break
			}
			l.write(batch)
		}
		if closing {
			return
		}
	}
}

func (l *Logger) write(batch []*Record) {
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.WriteTimeout)
	defer cancel()
	if err := l.sink.Write(ctx, batch); err != nil {
		l.failed.Add(uint64(len(batch)))
		// At most one line every 10 s: a lost database must not flood the log with one line per batch.
		now := time.Now().UnixNano()
		if last := l.lastErr.Load(); now-last >= int64(10*time.Second) && l.lastErr.CompareAndSwap(last, now) {
			l.opts.Logger.Error("decision log: records lost", "records", len(batch), "err", err,
				"failed_total", l.failed.Load(), "dropped_total", l.dropped.Load())
		}
		return
	}
	l.written.Add(uint64(len(batch)))
}
