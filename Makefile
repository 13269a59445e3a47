# mixlab: the two entry points are `make run` and `make test`; both install
# what is missing first (scripts/deps.sh) and build incrementally.
BUILD   ?= build
EXP     ?= experiments/quickstart.toml
PREFIX  ?= $(CURDIR)/$(BUILD)/install
JOBS    ?= $(shell nproc)
ARGS    ?=

.PHONY: deps configure build test run install clean

deps:
	@bash scripts/deps.sh

# A unity build (CMake compiles batches of 8 sources as one file) halves a cold build: each
# LibTorch template is instantiated and optimised once per batch instead of once per file.
# Configure without it (plain `cmake -B build`) for quick rebuilds of one edited file; the unit
# tests are never batched (tests/CMakeLists.txt). Two host or plugin files that define the same
# name in an anonymous namespace fail only in this build: name such helpers after their file.
$(BUILD)/build.ninja:
	cmake -G Ninja -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_UNITY_BUILD=ON .

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) $(ARGS)

run: build
	./$(BUILD)/host run $(EXP) $(ARGS)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD)
