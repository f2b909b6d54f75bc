// Command devenv-coredns is the cluster DNS of tracardi-operator's devenv: CoreDNS, pinned in go.mod,
// with only the plugins a kubeadm cluster's Corefile uses (bind, errors, ready, kubernetes, forward,
// cache, loadbalance), so that it builds quickly beside the control plane.
//
//	devenv-coredns -conf Corefile
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The plugins above, in CoreDNS's own order (plugin.cfg): the order a query passes through them.
var directives = []string{"bind", "ready", "errors", "cache", "loadbalance", "kubernetes", "forward"}

func main() {
	dnsserver.Directives = directives
	coremain.Run()
}
