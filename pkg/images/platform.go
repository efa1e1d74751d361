package images

import "github.com/containerd/platforms"

func platformString() string { return platforms.Format(platforms.DefaultSpec()) }
