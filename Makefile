# The two commands of the README, and a few helpers. Everything real lives in scripts/.
.PHONY: run check build install bench format clean demo

run:
	@scripts/run

check:
	@scripts/check

build:
	@scripts/install-deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DOSBILL_TESTS=OFF >/dev/null
	@cmake --build build -j$$(nproc)

install: build
	@cmake --install build

bench:
	@scripts/install-deps
	@bench/run-broker-bench
	@bench/run-token-bench
	@bench/run-controller-bench
	@bench/run-metering-bench
	@bench/run-billing-bench
	@bench/run-postgres-bench

demo:
	@scripts/install-deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DOSBILL_TESTS=OFF >/dev/null
	@cmake --build build -j$$(nproc) >/dev/null
	@scripts/demo build

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	@rm -rf build build-check build-asan build-bench
