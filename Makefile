# The two commands of the README: `make demo` (the main job) and `make test`.
# Both build .venv from nothing with only Python and make. On a machine with an NVIDIA
# driver the matching CuPy extra (cuda12 / cuda13, from the driver's CUDA version) is added.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# "CUDA Version: 12.4" in nvidia-smi's header -> cuda12; nothing when there is no driver.
CUDA_MAJOR := $(shell nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9]*\).*/\1/p' | head -n1)
CUDA_EXTRA := $(if $(filter 12,$(CUDA_MAJOR)),cuda12,$(if $(filter 13,$(CUDA_MAJOR)),cuda13,))
comma      := ,
# The test extra brings cupy-cuda13x (for NVRTC and CuPy's marshalling without a GPU); next to a
# CUDA 12 driver it would clash with cupy-cuda12x, so that machine takes test-base instead.
TEST_EXTRA := $(if $(filter cuda12,$(CUDA_EXTRA)),test-base,test)
# opencv: the CPU backend's fastest engine and the image codecs' (the numpy engines and Pillow
# serve without it; the tests check both ways).
EXTRAS     := $(TEST_EXTRA),opencv$(if $(CUDA_EXTRA),$(comma)$(CUDA_EXTRA),)

.PHONY: demo test bench venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	@touch $@

demo: venv
	$(BIN)/gpuconv demo --out demo_out
	$(BIN)/gpuconv apply gaussian:11:2 demo_out/inputs -o demo_out/applied --overwrite

# pytest, then an NVRTC compile of every CUDA kernel variant (no GPU needed), so a CUDA
# compile error fails the tests even on a machine without a GPU.
test: venv
	$(BIN)/python -m pytest -q
	$(BIN)/gpuconv doctor

# The CPU bench (BENCH.md rows C1-C6) needs the peers of the bench extra.
bench: venv
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.run_cpu --out bench/results

clean:
	rm -rf $(VENV) demo_out build *.egg-info
