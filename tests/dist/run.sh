#!/bin/sh
# Runs a program under mpirun with N ranks: exit 77 (ctest SKIP) when mpirun
# is absent.  Root (CI) and 2-core machines need --allow-run-as-root and
# --oversubscribe; the single-copy mechanism is off because containers often
# forbid the ptrace it needs.
#   run.sh N program [args...]
n=$1
shift
MPIRUN=${TYR_MPIRUN:-$(command -v mpirun || command -v mpiexec)}
if [ -z "$MPIRUN" ]; then
  echo "SKIP: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)"
  exit 77
fi
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export TYR_NO_ENV_SETUP=1
# sanitizer builds: Open MPI keeps allocations until exit, which LeakSanitizer
# would report as leaks (the tests count Tyr's live tensors themselves)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
exec "$MPIRUN" --allow-run-as-root --oversubscribe --bind-to none -np "$n" \
  -x OMP_NUM_THREADS -x TYR_NO_ENV_SETUP -x OMPI_MCA_btl_vader_single_copy_mechanism \
  -x ASAN_OPTIONS "$@"
