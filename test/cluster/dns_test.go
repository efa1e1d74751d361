package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keelson/keelson/test/images"
	"github.com/keelson/keelson/test/wait"
)

// The cluster DNS: CoreDNS behind the kube-dns Service at a fixed address in the
// service CIDR, which every kubelet writes into its pods' resolv.conf.
const (
	dnsIP     = "10.252.0.10"
	dnsDomain = "cluster.local"
)

// coreDNS is CoreDNS as clusters deploy it (kube-system/coredns behind kube-dns). The
// machine has no network, so there is no upstream to forward to: the server block
// holds only the cluster's zones, and other names are refused at once. The pods use
// dnsPolicy Default so that they do not resolve through themselves.
const coreDNS = `apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- {apiGroups: [""], resources: [services, namespaces, pods], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    %[1]s:53 in-addr.arpa:53 ip6.arpa:53 {
        errors
        health {
            lameduck 5s
        }
        ready
        kubernetes {
            pods insecure
            ttl 30
        }
        cache 30
        loop
        reload
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 2
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {k8s-app: kube-dns}}}
      containers:
      - name: coredns
        image: %[2]s
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
        - {name: dns-tcp, containerPort: 53, protocol: TCP}
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
        livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10, failureThreshold: 5}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes:
      - {name: config, configMap: {name: coredns}}
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: %[3]s
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
`

// deployDNS pushes the CoreDNS image to the test registry, deploys it and waits
// until its replicas are ready (the ready plugin answers once the kubernetes plugin
// has synced with the apiserver).
func (c *cluster) deployDNS(t *testing.T) {
	ref, img, err := images.CoreDNSImage()
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Push(ref, img); err != nil {
		t.Fatal(err)
	}
	c.apply(t, fmt.Sprintf(coreDNS, dnsDomain, ref, dnsIP))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := c.cp.Kubectl(ctx, "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=4m"); err != nil {
		describe, _ := c.cp.Kubectl(context.Background(), "-n", "kube-system", "describe", "pods", "-l", "k8s-app=kube-dns")
		logs, _ := c.cp.Kubectl(context.Background(), "-n", "kube-system", "logs", "-l", "k8s-app=kube-dns", "--tail=30")
		t.Fatalf("CoreDNS not ready: %v\n%s\n%s", err, describe, logs)
	}
}

// byName is a Service in front of echo servers kept off node-0, and a client pod on
// node-0, in a namespace of their own so that the short name and the full name differ.
const byName = `apiVersion: v1
kind: Namespace
metadata: {name: dns-e2e}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: dns-e2e}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      automountServiceAccountToken: false
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions: [{key: kubernetes.io/hostname, operator: NotIn, values: [node-0]}]
      containers:
      - name: web
        image: docker.io/keelson/echoserver:1.0
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: dns-e2e}
spec:
  selector: {app: web}
  ports: [{port: 8000, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: dns-e2e}
spec:
  automountServiceAccountToken: false
  nodeName: node-0
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: docker.io/keelson/echoserver:1.0
    command: ["sleep", "100000"]
`

// serviceByName reaches a ClusterIP Service by its full and its short name: the
// client's resolver asks CoreDNS through kube-dns's ClusterIP, and the connection
// goes through kube-proxy to a server on another node.
func (c *cluster) serviceByName(t *testing.T) {
	c.apply(t, byName)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if _, err := c.cp.Kubectl(ctx, "delete", "namespace", "dns-e2e", "--wait"); err != nil {
			t.Error(err)
		}
	}()
	c.kubectl(t, "-n", "dns-e2e", "rollout", "status", "deployment/web", "--timeout=4m")
	c.kubectl(t, "-n", "dns-e2e", "wait", "--for=condition=Ready", "pod/client", "--timeout=4m")

	resolv := c.kubectl(t, "-n", "dns-e2e", "exec", "client", "--", "cat", "/etc/resolv.conf")
	for _, want := range []string{
		"nameserver " + dnsIP,
		"search dns-e2e.svc." + dnsDomain + " svc." + dnsDomain + " " + dnsDomain,
		"options ndots:5",
	} {
		if !strings.Contains(resolv, want) {
			t.Errorf("client's resolv.conf has no %q:\n%s", want, resolv)
		}
	}

	for _, host := range []string{"web.dns-e2e.svc." + dnsDomain, "web"} {
		url := "http://" + host + ":8000/"
		wait.For(t, "the client gets "+url, 2*time.Minute, func() error {
			got, err := c.cp.Kubectl(context.Background(), "-n", "dns-e2e", "exec", "client", "--", "/echoserver", "get", url)
			if err != nil {
				return err
			}
			if !strings.HasPrefix(got, "GET /\n") || !strings.Contains(got, "host=web-") {
				return fmt.Errorf("reply %q", got)
			}
			return nil
		})
	}
}
