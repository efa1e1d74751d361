package doctor

import tasksapi "github.com/containerd/containerd/api/services/tasks/v1"

func deleteTaskRequest(id string) *tasksapi.DeleteTaskRequest {
	return &tasksapi.DeleteTaskRequest{ContainerID: id}
}
