# Thin wrapper over CMake for the README's commands.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test demo bench clean format sanitize docs

all: build

deps:
	@sh scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DTYR_WERROR=ON $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The demo trains on the CPU: its own CPU-only build of just the program (no
# CUDA kernels to compile, even where nvcc is installed).
DEMO_BUILD ?= build-demo
demo: deps
	cmake -S . -B $(DEMO_BUILD) -DCMAKE_BUILD_TYPE=Release -DTYR_CUDA=OFF $(CMAKE_FLAGS) >/dev/null
	cmake --build $(DEMO_BUILD) -j $(JOBS) --target train_gpt
	./$(DEMO_BUILD)/train_gpt --preset shakespeare_cpu

# The unit tests under ASan + UBSan (the tests that build outside programs
# against the library - docs, C++, install - and the integration runs and
# whole training programs under mpirun (dist_test_train_*) are
# left to `make test`).
sanitize: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTYR_SANITIZE=ON -DTYR_CUDA=OFF -DTYR_WERROR=ON
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS) -E '^(integration_|dist_test_train_|compile_|docs_|cxx_|install_)'

# The API reference from the header comments (Doxygen, installed from Debian
# when missing) into $(BUILD)/docs/html; the user guide is docs/guide/.
docs:
	@command -v doxygen >/dev/null 2>&1 || DOCS=1 sh scripts/install-deps.sh
	mkdir -p $(BUILD)/docs
	TYR_DOCS_OUT=$(BUILD)/docs doxygen docs/api/Doxyfile
	@echo "API reference: $(BUILD)/docs/html/index.html"

format:
	find include src tests bench examples tools -name '*.[ch]' -o -name '*.cu' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(DEMO_BUILD) build-asan build-fuzz
