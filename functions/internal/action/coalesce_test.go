package action

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdefn/mdefn/pkg/atp"
)

const testMachine = "aa00000000000000000000000000000000000001"

// stubClient resolves every machine ID to itself and has no pending actions.
type stubClient struct{}

func (stubClient) GetMachine(_ context.Context, id string) (*atp.Machine, error) {
	return &atp.Machine{ID: id, ComputerDNSName: "ws1.contoso.com"}, nil
}
func (stubClient) FindMachinesByName(context.Context, string) ([]atp.Machine, error) { return nil, nil }
func (stubClient) FindMachinesByIP(context.Context, netip.Addr, time.Time) ([]atp.Machine, error) {
	return nil, nil
}
func (stubClient) ListMachineActions(context.Context, *atp.ListMachineActionsOptions) ([]atp.MachineAction, error) {
	return nil, nil
}

var testKind = Kind{Function: "test", Type: atp.ActionIsolate, Path: "isolate", Verb: "isolate"}

func testRequest(send func(ctx context.Context, id string) (*atp.MachineAction, error)) Request {
	return Request{Device: Device{By: ByMachineID, MachineID: testMachine}, Comment: "c",
		Body: map[string]any{"Comment": "c"}, Send: send}
}

// TestCoalesceFollowerOutlivesLeader: identical deliveries share one run,
// but a delivery with a later deadline is not failed by the first one's:
// when the shared run ends on the first caller's deadline, the later one
// runs again on its own time and succeeds.
func TestCoalesceFollowerOutlivesLeader(t *testing.T) {
	var sends atomic.Int32
	started := make(chan struct{})
	var once sync.Once
	send := func(ctx context.Context, id string) (*atp.MachineAction, error) {
		if sends.Add(1) == 1 {
			once.Do(func() { close(started) })
			<-ctx.Done() // the first run outlasts its caller's deadline
			return nil, ctx.Err()
		}
		return &atp.MachineAction{ID: "act-2", Type: atp.ActionIsolate, Status: atp.ActionPending}, nil
	}
	r := &Runner{Client: stubClient{}}
	leaderCtx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	leaderErr := make(chan error, 1)
	go func() {
		_, err := r.Do(leaderCtx, &testKind, testRequest(send))
		leaderErr <- err
	}()
	<-started
	followerCtx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	res, err := r.Do(followerCtx, &testKind, testRequest(send))
	if err != nil {
		t.Fatalf("follower Do() error %v, want success after its own run", err)
	}
	if res.Action == nil || res.Action.ID != "act-2" {
		t.Errorf("follower Do() = %+v, want action act-2", res)
	}
	if err := <-leaderErr; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("leader Do() error %v, want its own deadline", err)
	}
	if n := sends.Load(); n != 2 {
		t.Errorf("sends = %d, want 2 (the leader's, then the follower's own)", n)
	}
}

// TestCoalesceFollowerDeadlineFirst: a delivery whose deadline passes
// before the shared run ends answers at its own deadline; the run goes on
// and serves the first caller.
func TestCoalesceFollowerDeadlineFirst(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	var sends atomic.Int32
	send := func(ctx context.Context, id string) (*atp.MachineAction, error) {
		sends.Add(1)
		close(started)
		<-release
		return &atp.MachineAction{ID: "act-1", Type: atp.ActionIsolate, Status: atp.ActionPending}, nil
	}
	r := &Runner{Client: stubClient{}}
	type out struct {
		res *Result
		err error
	}
	leader := make(chan out, 1)
	go func() {
		res, err := r.Do(context.Background(), &testKind, testRequest(send))
		leader <- out{res, err}
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.Do(ctx, &testKind, testRequest(send)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("follower Do() error %v, want its own deadline", err)
	}
	close(release)
	got := <-leader
	if got.err != nil || got.res.Status != http.StatusCreated || got.res.Action.ID != "act-1" {
		t.Errorf("leader Do() = %+v, %v; want 201 with act-1", got.res, got.err)
	}
	if n := sends.Load(); n != 1 {
		t.Errorf("sends = %d, want 1", n)
	}
}

// TestCoalesceRepeatedDelivery: a delivery that joins a run answers as a
// repeated delivery of it (200 alreadyPending, the same action).
func TestCoalesceRepeatedDelivery(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	var once sync.Once
	send := func(ctx context.Context, id string) (*atp.MachineAction, error) {
		once.Do(func() { close(started) })
		<-release
		return &atp.MachineAction{ID: "act-1", Type: atp.ActionIsolate, Status: atp.ActionPending}, nil
	}
	r := &Runner{Client: stubClient{}}
	first := make(chan *Result, 1)
	go func() {
		res, _ := r.Do(context.Background(), &testKind, testRequest(send))
		first <- res
	}()
	<-started
	second := make(chan *Result, 1)
	go func() {
		res, _ := r.Do(context.Background(), &testKind, testRequest(send))
		second <- res
	}()
	// Let the second delivery join before the run ends (it only has to
	// reach the in-flight table: no network is involved).
	time.Sleep(200 * time.Millisecond)
	close(release)
	a, b := <-first, <-second
	if a == nil || b == nil {
		t.Fatalf("answers %v, %v; want two", a, b)
	}
	statuses := map[int]int{a.Status: 1}
	statuses[b.Status]++
	if statuses[http.StatusCreated] != 1 || statuses[http.StatusOK] != 1 || a.Action.ID != b.Action.ID {
		t.Errorf("answers %d %+v and %d %+v; want one 201 and one 200 alreadyPending naming the same action", a.Status, a.Action, b.Status, b.Action)
	}
}
