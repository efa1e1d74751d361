package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
)

// containerd dies and comes back under a running keelson (here an external one, so
// the test controls the downtime).
func TestContainerdRestart(t *testing.T) {
	harness.RequireRoot(t)
	for name, bin := range containerdBinaries(t) {
		t.Run(name, func(t *testing.T) { testContainerdRestart(t, bin) })
	}
}

func testContainerdRestart(t *testing.T, containerdBinary string) {
	ext := harness.StartContainerd(t, containerdBinary)
	opts := harness.Options{Registry: reg, ContainerdAddress: ext.Address}
	k := harness.Prepare(t, opts)
	k.Start(opts)
	mustPull(t, k, images.Busybox)
	p := newPod(t, k, "cdrestart")
	long := p.run(t, ctrConfig("long", images.Busybox, "sleep", "1000"))
	victim := p.run(t, ctrConfig("victim", images.Busybox, "sleep", "1000"))
	downVictim := p.run(t, ctrConfig("down-victim", images.Busybox, "sleep", "1000"))
	downPid := ctrPid(t, k, downVictim)

	ext.Kill()
	waitCondition(t, k, runtimeapi.RuntimeReady, false, 15*time.Second)
	// An exit while containerd is away: keelson hears it from the shim.
	if err := syscall.Kill(downPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Calls that need containerd fail fast with Unavailable; reads still answer.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := k.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: long, Cmd: []string{"true"}})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("exec while containerd is down: %v, want Unavailable", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the failing call hung for %s", took)
	}
	if st := ctrStatus(t, k, long); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("status while containerd is down: %v", st.State)
	}

	ext.Restart(t)
	waitCondition(t, k, runtimeapi.RuntimeReady, true, 60*time.Second)
	if r := execSync(t, k, long, 10, "echo", "back"); string(r.Stdout) != "back\n" {
		t.Errorf("exec after containerd came back: %q", r.Stdout)
	}
	if st := waitExited(t, k, downVictim, 20*time.Second); st.ExitCode != 137 || st.Reason != "Error" {
		t.Errorf("exit while containerd was down: code %d (%s: %s), want 137", st.ExitCode, st.Reason, st.Message)
	}
	// Its task (and so its share of the shim) goes once containerd is back.
	cc, err := k.ContainerdClient(t).LoadContainer(harness.Ctx(t), downVictim)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the task of the container that exited while containerd was down goes", 20*time.Second, func() (bool, string) {
		_, err := cc.Task(harness.Ctx(t), nil)
		return errdefs.IsNotFound(err), fmt.Sprintf("Task: %v", err)
	})
	// Events are followed again: an exit now is seen without anyone asking.
	if err := syscall.Kill(ctrPid(t, k, victim), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := waitExited(t, k, victim, 20*time.Second)
	if st.ExitCode != 137 {
		t.Errorf("victim exit code %d, want 137", st.ExitCode)
	}
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}

// A container that exits while the supervised containerd is dead keeps its real exit
// code, although the restarted containerd drops the task.
func TestExitWhileSupervisedContainerdIsDown(t *testing.T) {
	k := containerTestKeelson(t)
	p := newPod(t, k, "cddown")
	long := p.run(t, ctrConfig("long", images.Busybox, "sleep", "1000"))
	victim := p.run(t, ctrConfig("victim", images.Busybox, "sleep", "1000"))
	vpid := ctrPid(t, k, victim)
	pids := k.ContainerdPids()
	if len(pids) != 1 {
		t.Fatalf("containerd children = %v", pids)
	}
	// The supervisor waits at least half a second before restarting containerd.
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for harness.ProcessAlive(pids[0]) {
		time.Sleep(time.Millisecond)
	}
	if err := syscall.Kill(vpid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// containerd's death may not be noticed yet: wait for the restart itself.
	eventually(t, "the supervised containerd restarted", 30*time.Second, func() (bool, string) {
		st, err := k.Runtime.Status(ctxT(t), &runtimeapi.StatusRequest{Verbose: true})
		if err != nil {
			return false, err.Error()
		}
		ready := condition(st, runtimeapi.RuntimeReady)
		return st.Info["containerdRestarts"] == "1" && ready != nil && ready.Status, fmt.Sprint(st.Info["containerdRestarts"], ready)
	})
	st := waitExited(t, k, victim, 20*time.Second)
	if st.ExitCode != 137 || st.Reason != "Error" {
		t.Errorf("victim: exit code %d (%s: %s), want 137", st.ExitCode, st.Reason, st.Message)
	}
	if st := ctrStatus(t, k, long); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("the other container: %v", st.State)
	}
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}

// ctrPid is a running container's host PID, from its verbose status.
func ctrPid(t *testing.T, k *harness.Keelson, id string) int {
	t.Helper()
	resp, err := k.Runtime.ContainerStatus(harness.Ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Pid int }
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info.Pid <= 1 {
		t.Fatalf("no pid for container %s: %v %v", id, resp.Info, err)
	}
	return info.Pid
}

// Four clients create, start, stop and remove 50 pods of two containers at once while
// a poller reads like kubelet; nothing fails, the lists match containerd's truth, and
// nothing is left.
func TestConcurrentPods(t *testing.T) {
	k := containerTestKeelson(t)
	mustPull(t, k, images.Pause)
	const clients, pods = 4, 50
	var pollErrs atomic.Int64
	stopPoll := make(chan struct{})
	var pollWG sync.WaitGroup
	pollWG.Add(1)
	go func() {
		defer pollWG.Done()
		for {
			select {
			case <-stopPoll:
				return
			case <-time.After(100 * time.Millisecond):
			}
			ctx := harness.Ctx(t)
			ps, err := k.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
			if err != nil {
				pollErrs.Add(1)
				continue
			}
			if _, err := k.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); err != nil {
				pollErrs.Add(1)
			}
			for _, p := range ps.Items {
				if _, err := k.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.Id}); err != nil && status.Code(err) != codes.NotFound {
					pollErrs.Add(1)
				}
			}
		}
	}()

	ids := make([][]string, clients)
	var errCount atomic.Int64
	each := func(fn func(c, i int) error) {
		var wg sync.WaitGroup
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := c; i < pods; i += clients {
					if err := fn(c, i); err != nil {
						errCount.Add(1)
						t.Errorf("client %d pod %d: %v", c, i, err)
					}
				}
			}()
		}
		wg.Wait()
	}
	var mu sync.Mutex
	each(func(c, i int) error {
		ctx := harness.Ctx(t)
		cfg := podConfig(k, fmt.Sprintf("conc-%d", i))
		run, err := k.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
		if err != nil {
			return err
		}
		mu.Lock()
		ids[c] = append(ids[c], run.PodSandboxId)
		mu.Unlock()
		for _, name := range []string{"a", "b"} {
			cr, err := k.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: run.PodSandboxId, Config: ctrConfig(name, images.Busybox, "sleep", "1000"), SandboxConfig: cfg})
			if err != nil {
				return err
			}
			if _, err := k.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
				return err
			}
		}
		return nil
	})

	// The lists agree with containerd's tasks.
	ctx := harness.Ctx(t)
	ps, _ := k.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}})
	cs, _ := k.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
	if len(ps.Items) != pods || len(cs.Containers) != 2*pods {
		t.Errorf("lists show %d ready pods and %d running containers, want %d and %d", len(ps.Items), len(cs.Containers), pods, 2*pods)
	}
	cl := k.ContainerdClient(t)
	tasks, err := cl.TaskService().List(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	running := map[string]bool{}
	for _, task := range tasks.Tasks {
		if task.Status == tasktypes.Status_RUNNING {
			running[task.ID] = true
		}
	}
	for _, c := range cs.Containers {
		if !running[c.Id] {
			t.Errorf("container %s is RUNNING in keelson but its task is not", c.Id[:12])
		}
	}

	each(func(c, i int) error {
		mu.Lock()
		id := ids[c][0]
		ids[c] = ids[c][1:]
		mu.Unlock()
		ctx := harness.Ctx(t)
		if _, err := k.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			return err
		}
		_, err := k.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
		return err
	})
	close(stopPoll)
	pollWG.Wait()
	if n := pollErrs.Load(); n != 0 {
		t.Errorf("%d polling errors", n)
	}
	k.CheckNoLeaks(t)
}
