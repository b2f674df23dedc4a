//go:build tools

// Keeps kube-apiserver's command package in go.mod and go.sum.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
