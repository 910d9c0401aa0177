package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/groupgate/groupgate/client"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// StreamConfig is one stream run: the same EffectiveMembers request sent Repeat times, one stream after the
// other, each read to its end.
type StreamConfig struct {
	Addr, Token string
	Request     *pb.EffectiveMembersRequest
	// Repeat is how many timed streams to read; one untimed stream comes before them, which warms both ends
	// and, with Record, keeps the answer.
	Repeat int
	// Record keeps the untimed stream's messages in StreamReport.Messages, for a no-op handler to send the same
	// answer (ServeNoOpStream).
	Record bool
	// ServerCPU, when set, reads the server process's CPU time so far (a server in a process of its own).
	ServerCPU func() time.Duration
}

// StreamReport is the outcome of a stream run: per stream, the time to the first message and to the end.
type StreamReport struct {
	Target    string `json:"target"`
	Transport string `json:"transport"`
	// Members and Messages are what each stream carried (every stream of a run must carry the same).
	Members  int   `json:"members"`
	Messages int   `json:"messages"`
	Bytes    int64 `json:"bytes"` // the messages' encoded size, summed
	// Whole and First are each timed stream's duration and wait for its first message, in the order run.
	Whole []time.Duration `json:"whole_ns"`
	First []time.Duration `json:"first_ns"`
	// CPUPerStream is this process's CPU time per timed stream (with an in-process server: server and client).
	CPUPerStream time.Duration `json:"cpu_per_stream_ns"`
	// ServerCPUPerStream is the server process's CPU time per timed stream, with StreamConfig.ServerCPU: what the
	// answer costs the server alone, less sensitive to other work on the machine than the streams' durations.
	ServerCPUPerStream time.Duration `json:"server_cpu_per_stream_ns,omitempty"`
	// Recorded is the untimed stream's answer, with StreamConfig.Record.
	Recorded []*pb.EffectiveMembersResponse `json:"-"`
}

// MedianWhole and MedianFirst are the medians of the timed streams.
func (r StreamReport) MedianWhole() time.Duration { return median(r.Whole) }
func (r StreamReport) MedianFirst() time.Duration { return median(r.First) }

// FastestWhole is the shortest timed stream: on a machine shared with other work, the one least delayed by it.
func (r StreamReport) FastestWhole() time.Duration {
	if len(r.Whole) == 0 {
		return 0
	}
	return slices.Min(r.Whole)
}

// FastestMembersPerSecond is Members over the fastest stream's duration.
func (r StreamReport) FastestMembersPerSecond() float64 {
	if m := r.FastestWhole(); m > 0 {
		return float64(r.Members) / m.Seconds()
	}
	return 0
}

// MembersPerSecond is Members over the median stream's duration.
func (r StreamReport) MembersPerSecond() float64 {
	if m := r.MedianWhole(); m > 0 {
		return float64(r.Members) / m.Seconds()
	}
	return 0
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func (r StreamReport) String() string {
	round := func(ds []time.Duration, unit time.Duration) []time.Duration {
		out := make([]time.Duration, len(ds))
		for i, d := range ds {
			out[i] = d.Round(unit)
		}
		return out
	}
	s := fmt.Sprintf("%-10s %-4s %9d members in %5d messages (%5.1f MiB): median %8s = %10.0f members/s (fastest %8s), first message median %7s   streams %v, first %v, cpu/stream %s",
		r.Target, r.Transport, r.Members, r.Messages, float64(r.Bytes)/(1<<20), r.MedianWhole().Round(time.Millisecond), r.MembersPerSecond(),
		r.FastestWhole().Round(time.Millisecond),
		r.MedianFirst().Round(time.Microsecond), round(r.Whole, time.Millisecond), round(r.First, 10*time.Microsecond),
		r.CPUPerStream.Round(time.Millisecond))
	if r.ServerCPUPerStream > 0 {
		s += fmt.Sprintf(", server cpu/stream %s", r.ServerCPUPerStream.Round(time.Millisecond))
	}
	return s
}

// Stream reads cfg.Request's answer from cfg.Addr, once untimed and then cfg.Repeat times timed.
func Stream(ctx context.Context, name string, cfg StreamConfig) (StreamReport, error) {
	c, err := client.Dial(cfg.Addr, client.Options{Token: cfg.Token})
	if err != nil {
		return StreamReport{}, err
	}
	defer c.Close()
	r := StreamReport{Target: name, Transport: Transport(cfg.Addr)}
	// The untimed stream: its counts are what every timed one must match.
	err = c.EachMember(ctx, cfg.Request, func(m *pb.EffectiveMembersResponse) error {
		r.Members += len(m.GetMembers())
		r.Messages++
		r.Bytes += int64(proto.Size(m))
		if cfg.Record {
			r.Recorded = append(r.Recorded, m)
		}
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("%s: %w", name, err)
	}
	cpuStart := ProcessCPU()
	var serverStart time.Duration
	if cfg.ServerCPU != nil {
		serverStart = cfg.ServerCPU()
	}
	for i := 0; i < cfg.Repeat; i++ {
		start, members, messages := time.Now(), 0, 0
		var first time.Duration
		err := c.EachMember(ctx, cfg.Request, func(m *pb.EffectiveMembersResponse) error {
			if messages++; messages == 1 {
				first = time.Since(start)
			}
			members += len(m.GetMembers())
			return nil
		})
		whole := time.Since(start)
		if err != nil {
			return r, fmt.Errorf("%s: %w", name, err)
		}
		if members != r.Members || messages != r.Messages {
			return r, fmt.Errorf("%s: stream %d carried %d members in %d messages, the first %d in %d", name, i+1, members, messages, r.Members, r.Messages)
		}
		r.Whole, r.First = append(r.Whole, whole), append(r.First, first)
	}
	if len(r.Whole) > 0 {
		r.CPUPerStream = (ProcessCPU() - cpuStart) / time.Duration(len(r.Whole))
		if cfg.ServerCPU != nil {
			r.ServerCPUPerStream = (cfg.ServerCPU() - serverStart) / time.Duration(len(r.Whole))
		}
	}
	return r, nil
}

// ServeNoOpStream is ServeNoOp whose EffectiveMembers answers every request with members, message by message:
// the floor a gRPC server stream of that answer costs on this machine, without the walk that finds it and the
// building of its messages.
func ServeNoOpStream(addr string, members []*pb.EffectiveMembersResponse) (target string, stop func(), err error) {
	return serveNoOp(addr, noOp{members: members})
}

// RecordMembers reads req's whole answer from the server at addr: the messages a no-op handler then replays.
func RecordMembers(ctx context.Context, addr, token string, req *pb.EffectiveMembersRequest) ([]*pb.EffectiveMembersResponse, error) {
	r, err := Stream(ctx, "record", StreamConfig{Addr: addr, Token: token, Request: req, Repeat: 0, Record: true})
	return r.Recorded, err
}

func (n noOp) EffectiveMembers(_ *pb.EffectiveMembersRequest, s grpc.ServerStreamingServer[pb.EffectiveMembersResponse]) error {
	if len(n.members) == 0 {
		return s.Send(&pb.EffectiveMembersResponse{})
	}
	for _, m := range n.members {
		if err := s.Send(m); err != nil {
			return err
		}
	}
	return nil
}
