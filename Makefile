# bootrelay — see README.md. Targets are the contract's (shared/CONTRACT.md).
SHELL := /bin/bash
NODE ?= node

.PHONY: all build typecheck test test-unit test-e2e demo image bench deps sysdeps openwrt-tools clean

all: build

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.package-lock.json

## the Debian packages the tests and the demo use: installs what is missing (as root on Debian),
## otherwise names it and fails. SKIP_DEPS=1 runs with what is there.
sysdeps:
	@bash scripts/install-deps.sh

## OpenWrt's opkg/apk/uci, built once into .cache/openwrt-tools for the package tests
openwrt-tools: sysdeps
	@bash scripts/openwrt-tools.sh

## dist/bootrelay.js and dist/relayctl.js: single files, no node_modules beside them
build: deps
	$(NODE) scripts/build.mjs

typecheck: deps
	npx tsc --noEmit -p .

## the OpenWrt packages: dist/bootrelay_<v>-r<n>_all.ipk (24.10) and, with an apk-tools v3 apk
## on PATH or APK=/path/to/apk, dist/bootrelay-<v>-r<n>.apk (25.12)
image: build
	bash image/build-ipk.sh

## everything: type check, unit, integration (loopback, namespaces, real clients) and the QEMU e2e boot
test: sysdeps openwrt-tools build image typecheck
	$(NODE) scripts/test.mjs

test-unit: deps
	npx vitest run test/unit

test-e2e: sysdeps build image
	npx vitest run test/e2e

## boots a VM through the relay on this machine and shows its progress (root)
demo: sysdeps build
	$(NODE) scripts/run-ts.mjs scripts/demo.ts $(FW)

bench: build
	$(NODE) scripts/bench.mjs

clean:
	rm -rf dist artifacts
