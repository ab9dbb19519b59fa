#!/usr/bin/env bash
# Prints the path of a kube-apiserver v1.20.2 for the end-to-end tests, built once from Debian's
# `kubernetes` source package by scripts/kubernetes.sh and cached outside the repository. It builds
# the whole component set the cluster test needs (about 7-10 minutes cold on 2 cores), so one cold
# build serves every test.
set -euo pipefail
dir=$("$(dirname "$0")/kubernetes.sh")
echo "$dir/kube-apiserver"
