# `make demo` and `make test` each set up .venv on first use, then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO := demo

.PHONY: demo test install clean

install: $(STAMP)

# torch is installed first and pinned: the machine carries the 2.13.0 CPU
# wheel, while an unpinned resolve would fetch several GB of CUDA packages.
# libruntime links the onnxruntime (and openvino) wheels of this venv, so they are
# installed before the project, which is then built without build isolation.
$(STAMP): pyproject.toml CMakeLists.txt $(wildcard cmake/* bindings/src/* bindings/include/runtime/* bindings/python/*)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	sh bindings/tools/install_build_deps.sh
	$(PY) -m pip install --quiet "scikit-build-core>=0.10" "pybind11>=2.12" "onnxruntime>=1.18" "openvino>=2024.0"
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(PY) -m pip install --quiet --no-build-isolation -e ".[dev]"
	touch $(STAMP)

# brn: a light UNet on synthetic strips; then lhrnet: a narrow keypoint network
# (0.18 M parameters) for two minutes, enough to run every step, far from enough
# to localise well (the full recipe is 160 epochs on a GPU).
demo: $(STAMP)
	$(PY) -m training.make_dataset --out $(DEMO)/data --seed 0 --force
	$(PY) -m training.train --family brn --data $(DEMO)/data --out $(DEMO)/run \
		--base-width 16 --epochs 10 --steps-per-epoch 25 --eval-every 5 --seed 0 --force
	$(PY) -m export.build --checkpoint $(DEMO)/run/best.pth --out $(DEMO)/bundle --force
	$(PY) -m runtime.infer $(DEMO)/bundle $(DEMO)/data/test/good $(DEMO)/data/test/bright_spots --out $(DEMO)/predictions --visualize
	$(PY) -m runtime.evaluate $(DEMO)/bundle $(DEMO)/data --backends onnxruntime,openvino --precisions fp32,fp16,int8
	$(PY) -m training.make_dataset --family lhrnet --images 60 --out $(DEMO)/lhrnet-data --seed 0 --force
	$(PY) -m training.train --family lhrnet --data $(DEMO)/lhrnet-data --out $(DEMO)/lhrnet-run \
		--widths 8 16 32 64 --fpn-channels 16 --head-channels 16 --epochs 6 --steps-per-epoch 10 --batch-size 8 \
		--lr 2e-3 --warmup-epochs 0 --ema-decay 0 --eval-every 3 --seed 0 --force
	$(PY) -m export.build --checkpoint $(DEMO)/lhrnet-run/best.pth --out $(DEMO)/lhrnet-bundle --force
	$(PY) -m runtime.infer $(DEMO)/lhrnet-bundle $(DEMO)/lhrnet-data/images --out $(DEMO)/lhrnet-predictions --visualize
	$(PY) -m runtime.evaluate $(DEMO)/lhrnet-bundle $(DEMO)/lhrnet-data --backends onnxruntime,openvino --precisions fp32,fp16,int8

# The Python suites, the C/C++ tests through CTest, then the same C/C++ tests
# built with AddressSanitizer and UBSan and a short libFuzzer run (about 2 minutes more).
test: $(STAMP)
	$(PY) -m pytest
	$(MAKE) ctest
	$(MAKE) sanitize

clean:
	rm -rf $(VENV) build $(DEMO) .pytest_cache

# ---- libruntime (C/C++): CTest, sanitizers, valgrind --------------------------
# Separate build trees from pip's (build/<wheel tag>); 2 parallel jobs at most.
CPP_BUILD := build/cpp
CMAKE_PY := -DPython3_EXECUTABLE=$(abspath $(PY))
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# ONNX Runtime is not instrumented but runs clean under ASan, leak checker
# included (no suppressions needed). The OpenVINO test is left out: TBB
# dlopen()s tbbbind with RTLD_DEEPBIND, which the ASan runtime refuses.
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

.PHONY: ctest sanitize valgrind

ctest: $(STAMP)
	sh bindings/tools/install_build_deps.sh
	cmake -S . -B $(CPP_BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_PY)
	cmake --build $(CPP_BUILD) -j 2
	ctest --test-dir $(CPP_BUILD) --output-on-failure

sanitize: $(STAMP)
	sh bindings/tools/install_build_deps.sh
	cmake -S . -B build/sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRUNTIME_BUILD_EXAMPLES=OFF $(CMAKE_PY) \
		"-DCMAKE_C_FLAGS=$(SAN_FLAGS)" "-DCMAKE_CXX_FLAGS=$(SAN_FLAGS)" \
		"-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined" \
		"-DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=address,undefined" \
		"-DCMAKE_MODULE_LINKER_FLAGS=-fsanitize=address,undefined"
	cmake --build build/sanitize -j 2
	$(SAN_ENV) ctest --test-dir build/sanitize --output-on-failure -E 'runtime\.openvino'
	$(MAKE) fuzz FUZZ_SECONDS=20

# 100 create/run/destroy cycles on the patch graph (about 5 minutes: ONNX Runtime's
# session creation is slow under memcheck); any definite leak or memory error
# fails, except one known in-place memcpy inside ONNX Runtime (valgrind.supp).
VALGRIND_CYCLES ?= 100
valgrind: $(STAMP)
	sh bindings/tools/install_build_deps.sh
	cmake -S . -B $(CPP_BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_PY)
	cmake --build $(CPP_BUILD) -j 2 --target test_cycles
	ctest --test-dir $(CPP_BUILD) -R 'runtime\.fixture' --output-on-failure
	valgrind --error-exitcode=1 --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
		--suppressions=tests/cpp/valgrind.supp --num-callers=30 \
		$(CPP_BUILD)/tests/cpp/test_cycles $(CPP_BUILD)/tests/cpp/fixture $(VALGRIND_CYCLES)

# ---- libFuzzer: the manifest parser and the pre-processing (clang) ------------
# bindings/fuzz: each target runs FUZZ_SECONDS from the committed seeds, the test
# fixtures' manifests and the corpus its earlier runs grew in build/fuzz/corpus
# (merged down to the inputs that add coverage after each run, so it stays small).
# A crash, sanitizer report, leak, uncaught exception or input slower than 10 s
# fails; the input is saved in build/fuzz/artifacts/ (replay: the fuzzer with
# that file as its argument). First, a 400 KB manifest of nested brackets that
# once overflowed the stack: too big for the seeds, made here.
FUZZ_BUILD := build/fuzz
FUZZ_SECONDS ?= 30
FUZZ_BIN := $(FUZZ_BUILD)/bindings/fuzz
FUZZ_FLAGS = -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
	-artifact_prefix=$(FUZZ_BUILD)/artifacts/
FUZZ_ENV := UBSAN_OPTIONS=print_stacktrace=1
fuzz_compact = rm -rf $(FUZZ_BUILD)/corpus/$(1).new && mkdir $(FUZZ_BUILD)/corpus/$(1).new && \
	$(FUZZ_BIN)/fuzz_$(1) -merge=1 $(FUZZ_BUILD)/corpus/$(1).new $(FUZZ_BUILD)/corpus/$(1) \
		> $(FUZZ_BUILD)/merge_$(1).log 2>&1 && \
	rm -rf $(FUZZ_BUILD)/corpus/$(1) && mv $(FUZZ_BUILD)/corpus/$(1).new $(FUZZ_BUILD)/corpus/$(1)
FUZZ_FIXTURES := $(wildcard $(CPP_BUILD)/tests/cpp/fixture/*/bundle/manifest.json \
	$(CPP_BUILD)/tests/cpp/fixture/*/*/bundle/manifest.json)

.PHONY: fuzz
fuzz: $(STAMP)
	sh bindings/tools/install_build_deps.sh
	sh bindings/tools/install_build_deps.sh clang-14 libclang-rt-14-dev
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 \
		-DCMAKE_CXX_COMPILER=clang++-14 -DRUNTIME_BUILD_FUZZERS=ON -DRUNTIME_BUILD_TESTS=OFF \
		-DRUNTIME_BUILD_EXAMPLES=OFF -DRUNTIME_BUILD_PYTHON=OFF $(CMAKE_PY)
	cmake --build $(FUZZ_BUILD) -j 2 --target fuzz_manifest fuzz_preprocess
	mkdir -p $(FUZZ_BUILD)/corpus/manifest $(FUZZ_BUILD)/corpus/preprocess $(FUZZ_BUILD)/seeds $(FUZZ_BUILD)/artifacts
	for f in $(FUZZ_FIXTURES); do cp "$$f" "$(FUZZ_BUILD)/seeds/$$(echo "$$f" | tr / _)"; done
	{ printf '{"schema_version": '; head -c 200000 /dev/zero | tr '\0' '['; \
	  head -c 200000 /dev/zero | tr '\0' ']'; printf '}'; } > $(FUZZ_BUILD)/deep_nesting.json
	$(FUZZ_ENV) $(FUZZ_BIN)/fuzz_manifest $(FUZZ_BUILD)/deep_nesting.json > $(FUZZ_BUILD)/deep_nesting.log 2>&1 \
		|| { tail -n 40 $(FUZZ_BUILD)/deep_nesting.log; exit 1; }
	$(FUZZ_ENV) $(FUZZ_BIN)/fuzz_manifest $(FUZZ_FLAGS) -dict=bindings/fuzz/manifest.dict \
		$(FUZZ_BUILD)/corpus/manifest bindings/fuzz/corpus/manifest $(FUZZ_BUILD)/seeds \
		> $(FUZZ_BUILD)/fuzz_manifest.log 2>&1 || { tail -n 60 $(FUZZ_BUILD)/fuzz_manifest.log; exit 1; }
	grep -E 'DONE|executed_units' $(FUZZ_BUILD)/fuzz_manifest.log
	$(call fuzz_compact,manifest)
	$(FUZZ_ENV) $(FUZZ_BIN)/fuzz_preprocess $(FUZZ_FLAGS) \
		$(FUZZ_BUILD)/corpus/preprocess bindings/fuzz/corpus/preprocess \
		> $(FUZZ_BUILD)/fuzz_preprocess.log 2>&1 || { tail -n 60 $(FUZZ_BUILD)/fuzz_preprocess.log; exit 1; }
	grep -E 'DONE|executed_units' $(FUZZ_BUILD)/fuzz_preprocess.log
	$(call fuzz_compact,preprocess)

# ---- latency benchmarks (pytest-benchmark; not part of `make test`) -------------
# Every suite in one run: this machine's GEMM peak, brn's graphs (stitched, fcn, the
# 18-call loop; ONNX Runtime and OpenVINO; FP32/FP16/INT8), Sessions per backend and
# precision, libruntime's overhead, lhrnet; then the AVX2-capped OpenVINO figures and
# the report: benchmarks/report/README.md with its charts, benchmarks.json, gates.json.
# Exports the full-size bundles into benchmarks/.cache on first use (minutes). A failed
# gate still writes the report, then fails the target.
BENCH_SUITES := benchmarks/test_gemm_peak.py benchmarks/test_export_latency.py benchmarks/test_runtime_latency.py \
	benchmarks/test_native_overhead.py benchmarks/test_lhrnet_latency.py
.PHONY: bench
bench: $(STAMP)
	rm -rf benchmarks/report && mkdir -p benchmarks/report
	status=0; timeout 3600 $(PY) -m pytest $(BENCH_SUITES) -q -p no:cacheprovider \
		--benchmark-columns=median,iqr,rounds --benchmark-sort=name \
		--benchmark-json benchmarks/report/benchmarks.json || status=$$?; \
	$(PY) -m benchmarks.avx2 || status=$$?; \
	$(PY) -m benchmarks.report || status=$$?; \
	exit $$status

# lhrnet at full size, 2 threads: every backend (onnxruntime, libruntime, openvino)
# and precision at batch 1 and 8 next to PyTorch eager, the ratio gates, and
# libruntime's overhead over raw ONNX Runtime on its graph. Exports the untrained
# bundle into benchmarks/.cache on first use (about a minute); the run itself
# takes about a minute on a quiet 2-core machine (3 to 7 on a busy one). Timings: build/bench_lhrnet.json.
.PHONY: bench-lhrnet
bench-lhrnet: $(STAMP)
	mkdir -p build
	timeout 1200 $(PY) -m pytest benchmarks/test_lhrnet_latency.py benchmarks/test_native_overhead.py -k lhrnet \
		-q -s -p no:cacheprovider --benchmark-columns=median,iqr,rounds --benchmark-sort=name \
		--benchmark-json build/bench_lhrnet.json

# ---- soak: concurrency, create/destroy cycles, RSS / fd / thread growth --------
# Builds the test-suite's tiny trained brn bundle, then per backend (onnxruntime,
# openvino, native) and precision: 4 threads x 50 runs on one shared Session, each
# result bitwise equal to a single-threaded reference, and 60 create/run/close
# cycles; fails on a mismatch, fds or threads left behind, or RSS growth above
# 10 MiB per 100 cycles. 8.5 minutes measured on a busy 2-core machine;
# writes build/soak.json (python -m benchmarks.soak --help for the sizes).
.PHONY: soak
soak: $(STAMP)
	mkdir -p build
	$(PY) -m benchmarks.soak --out build/soak.json
