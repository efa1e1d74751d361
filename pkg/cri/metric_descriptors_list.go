package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// metricDesc is one cAdvisor-named metric keelson reports through
// ListPodSandboxMetrics. Every metric carries the base labels, then its extra ones.
type metricDesc struct {
	name  string
	help  string
	typ   runtimeapi.MetricType
	extra []string
}

// baseLabels name the pod, its namespace, the container (empty for pod-level
// metrics), the container or sandbox ID, and the image.
var baseLabels = []string{"pod", "namespace", "container", "id", "image"}

const (
	counter = runtimeapi.MetricType_COUNTER
	gauge   = runtimeapi.MetricType_GAUGE
)

var (
	mCPUUsage         = &metricDesc{"container_cpu_usage_seconds_total", "Cumulative CPU time consumed in seconds.", counter, nil}
	mCPUUser          = &metricDesc{"container_cpu_user_seconds_total", "Cumulative user CPU time consumed in seconds.", counter, nil}
	mCPUSystem        = &metricDesc{"container_cpu_system_seconds_total", "Cumulative system CPU time consumed in seconds.", counter, nil}
	mCFSPeriods       = &metricDesc{"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", counter, nil}
	mCFSThrottled     = &metricDesc{"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", counter, nil}
	mCFSThrottledTime = &metricDesc{"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", counter, nil}

	mMemUsage        = &metricDesc{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", gauge, nil}
	mMemWorkingSet   = &metricDesc{"container_memory_working_set_bytes", "Current working set in bytes: usage minus inactive file pages.", gauge, nil}
	mMemRSS          = &metricDesc{"container_memory_rss", "Size of RSS in bytes.", gauge, nil}
	mMemCache        = &metricDesc{"container_memory_cache", "Number of bytes of page cache memory.", gauge, nil}
	mMemMappedFile   = &metricDesc{"container_memory_mapped_file", "Size of memory mapped files in bytes.", gauge, nil}
	mMemSwap         = &metricDesc{"container_memory_swap", "Container swap usage in bytes.", gauge, nil}
	mMemKernel       = &metricDesc{"container_memory_kernel_usage", "Size of kernel memory allocated to the container in bytes.", gauge, nil}
	mMemMaxUsage     = &metricDesc{"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.", gauge, nil}
	mMemFailcnt      = &metricDesc{"container_memory_failcnt", "Number of times memory usage hit the cgroup v1 limit.", counter, nil}
	mMemActiveFile   = &metricDesc{"container_memory_total_active_file_bytes", "Active file-backed memory in bytes.", gauge, nil}
	mMemInactiveFile = &metricDesc{"container_memory_total_inactive_file_bytes", "Inactive file-backed memory in bytes.", gauge, nil}
	mMemFailures     = &metricDesc{"container_memory_failures_total", "Cumulative count of memory allocation failures.", counter, []string{"failure_type", "scope"}}
	mOOMEvents       = &metricDesc{"container_oom_events_total", "Count of out of memory events observed for the container.", counter, nil}

	mNetRxBytes   = &metricDesc{"container_network_receive_bytes_total", "Cumulative count of bytes received.", counter, []string{"interface"}}
	mNetRxPackets = &metricDesc{"container_network_receive_packets_total", "Cumulative count of packets received.", counter, []string{"interface"}}
	mNetRxDropped = &metricDesc{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", counter, []string{"interface"}}
	mNetRxErrors  = &metricDesc{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", counter, []string{"interface"}}
	mNetTxBytes   = &metricDesc{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", counter, []string{"interface"}}
	mNetTxPackets = &metricDesc{"container_network_transmit_packets_total", "Cumulative count of packets transmitted.", counter, []string{"interface"}}
	mNetTxDropped = &metricDesc{"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", counter, []string{"interface"}}
	mNetTxErrors  = &metricDesc{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", counter, []string{"interface"}}

	mFsUsage       = &metricDesc{"container_fs_usage_bytes", "Number of bytes consumed by the container's writable layer on this filesystem.", gauge, []string{"device"}}
	mFsInodesFree  = &metricDesc{"container_fs_inodes_free", "Number of available inodes on the filesystem of the container's writable layer.", gauge, []string{"device"}}
	mFsInodesTotal = &metricDesc{"container_fs_inodes_total", "Number of inodes on the filesystem of the container's writable layer.", gauge, []string{"device"}}
	mFsLimit       = &metricDesc{"container_fs_limit_bytes", "Number of bytes the container may use on the filesystem of its writable layer (the filesystem's size).", gauge, []string{"device"}}
	mBlkio         = &metricDesc{"container_blkio_device_usage_total", "Blkio device bytes usage.", counter, []string{"device", "major", "minor", "operation"}}
	mFDs           = &metricDesc{"container_file_descriptors", "Number of open file descriptors of the container's processes.", gauge, nil}
	mSockets       = &metricDesc{"container_sockets", "Number of open sockets of the container's processes.", gauge, nil}
	mFsReadBytes   = &metricDesc{"container_fs_reads_bytes_total", "Cumulative count of bytes read.", counter, []string{"device"}}
	mFsReads       = &metricDesc{"container_fs_reads_total", "Cumulative count of reads completed.", counter, []string{"device"}}
	mFsWriteBytes  = &metricDesc{"container_fs_writes_bytes_total", "Cumulative count of bytes written.", counter, []string{"device"}}
	mFsWrites      = &metricDesc{"container_fs_writes_total", "Cumulative count of writes completed.", counter, []string{"device"}}
	mProcesses     = &metricDesc{"container_processes", "Number of processes running inside the container.", gauge, nil}
	mThreads       = &metricDesc{"container_threads", "Number of threads running inside the container.", gauge, nil}
	mThreadsMax    = &metricDesc{"container_threads_max", "Maximum number of threads allowed inside the container; 0 when unlimited.", gauge, nil}
	mLastSeen      = &metricDesc{"container_last_seen", "Last time the container was sampled, in seconds since the epoch.", gauge, nil}
	mStartTime     = &metricDesc{"container_start_time_seconds", "Start time of the container since the epoch, in seconds.", gauge, nil}
	mSpecCPUPeriod = &metricDesc{"container_spec_cpu_period", "CPU period of the container.", gauge, nil}
	mSpecCPUQuota  = &metricDesc{"container_spec_cpu_quota", "CPU quota of the container.", gauge, nil}
	mSpecCPUShares = &metricDesc{"container_spec_cpu_shares", "CPU share of the container.", gauge, nil}
	mSpecMemLimit  = &metricDesc{"container_spec_memory_limit_bytes", "Memory limit for the container.", gauge, nil}
	mSpecSwapLimit = &metricDesc{"container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", gauge, nil}
)

// metricDescs is every metric ListPodSandboxMetrics may report.
var metricDescs = []*metricDesc{
	mCPUUsage, mCPUUser, mCPUSystem, mCFSPeriods, mCFSThrottled, mCFSThrottledTime,
	mMemUsage, mMemWorkingSet, mMemRSS, mMemCache, mMemMappedFile, mMemSwap, mMemKernel,
	mMemMaxUsage, mMemFailcnt, mMemActiveFile, mMemInactiveFile, mMemFailures, mOOMEvents,
	mNetRxBytes, mNetRxPackets, mNetRxDropped, mNetRxErrors, mNetTxBytes, mNetTxPackets, mNetTxDropped, mNetTxErrors,
	mFsUsage, mFsInodesFree, mFsInodesTotal, mFsLimit, mFsReadBytes, mFsReads, mFsWriteBytes, mFsWrites, mBlkio,
	mProcesses, mThreads, mThreadsMax, mFDs, mSockets, mLastSeen, mStartTime,
	mSpecCPUPeriod, mSpecCPUQuota, mSpecCPUShares, mSpecMemLimit, mSpecSwapLimit,
}

// ListMetricDescriptors describes the metrics ListPodSandboxMetrics reports, by their
// cAdvisor names, so kubelet can serve them on /metrics/cadvisor.
func (s *Server) ListMetricDescriptors(ctx context.Context, r *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	out := make([]*runtimeapi.MetricDescriptor, 0, len(metricDescs))
	for _, d := range metricDescs {
		keys := append(append(make([]string, 0, len(baseLabels)+len(d.extra)), baseLabels...), d.extra...)
		out = append(out, &runtimeapi.MetricDescriptor{Name: d.name, Help: d.help, LabelKeys: keys})
	}
	return &runtimeapi.ListMetricDescriptorsResponse{Descriptors: out}, nil
}
