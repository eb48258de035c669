#include "mpi_collective.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <stdexcept>
#include <vector>

#ifdef FERKIT_HAVE_MPI
#define OMPI_SKIP_MPICXX 1  // the C API only (Open MPI's deprecated C++ bindings need their own library)
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace ferkit {

namespace {
int g_error_fd = STDERR_FILENO;  // where mpi_fail writes (stderr, saved before mpi_quiet_other_ranks)
int g_ranks = 0;                  // world size once started
int g_rank = 0;
[[maybe_unused]] int g_alive = 0;  // Collectives not yet destroyed
}  // namespace

#ifdef FERKIT_HAVE_MPI

namespace {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw std::runtime_error(std::string("MPI ") + what + ": " + std::string(text, len));
}

// MPI counts are ints: long buffers go in pieces.
constexpr size_t kChunk = static_cast<size_t>(std::numeric_limits<int>::max() / 2);

class MpiCollective : public Collective {
 public:
  MpiCollective() { ++g_alive; }
  ~MpiCollective() override {
    // Not while an error unwinds: MPI_Finalize waits for every process, and the others may be waiting in a sum;
    // mpi_fail() ends them all instead.
    if (--g_alive == 0 && std::uncaught_exceptions() == 0) {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Finalize();
    }
  }
  int rank() const override { return g_rank; }
  int size() const override { return g_ranks; }
  void sum(double* v, size_t n) override { reduce(v, n, MPI_DOUBLE); }
  void sum(float* v, size_t n) override { reduce(v, n, MPI_FLOAT); }
  bool same(uint64_t value) override {
    uint64_t lo = value, hi = value;
    check(MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD), "allreduce (min)");
    check(MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD), "allreduce (max)");
    return lo == hi;
  }
  void broadcast(std::vector<uint8_t>& bytes) override {
    uint64_t n = bytes.size();
    check(MPI_Bcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD), "broadcast");
    bytes.resize(n);
    for (size_t at = 0; at < n; at += kChunk)
      check(MPI_Bcast(bytes.data() + at, static_cast<int>(std::min<size_t>(kChunk, n - at)), MPI_BYTE, 0,
                      MPI_COMM_WORLD),
            "broadcast");
  }

 private:
  template <typename T>
  void reduce(T* v, size_t n, MPI_Datatype type) {
    for (size_t at = 0; at < n; at += kChunk)
      check(MPI_Allreduce(MPI_IN_PLACE, v + at, static_cast<int>(std::min<size_t>(kChunk, n - at)), type, MPI_SUM,
                          MPI_COMM_WORLD),
            "allreduce");
  }
};

}  // namespace

std::unique_ptr<Collective> mpi_start() {
  int started = 0;
  MPI_Initialized(&started);
  if (!started) {
    // OpenMP threads run the layers; only the main thread calls MPI.
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "init");
    // Errors come back as codes (check() turns them into exceptions) instead of ending the process silently.
    check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "error handler");
    check(MPI_Comm_size(MPI_COMM_WORLD, &g_ranks), "size");
    check(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank), "rank");
  }
  return std::make_unique<MpiCollective>();
}

[[noreturn]] void mpi_fail(const std::string& message, int status) {
  const std::string line = "\nfer-train (process " + std::to_string(g_rank) + " of " + std::to_string(g_ranks) +
                           "): error: " + message + "\n";
  if (::write(g_error_fd, line.data(), line.size()) < 0) {
  }
  int started = 0, finalized = 0;
  MPI_Initialized(&started);
  MPI_Finalized(&finalized);
  if (started && !finalized) {
    if (g_ranks > 1) MPI_Abort(MPI_COMM_WORLD, status);
    MPI_Finalize();  // alone: nobody waits, and mpirun expects it
  }
  std::exit(status);
}

#else

std::unique_ptr<Collective> mpi_start() {
  throw std::runtime_error("--distributed: this fer-train was built without MPI (install Debian's libopenmpi-dev and "
                           "openmpi-bin, then build again)");
}

[[noreturn]] void mpi_fail(const std::string& message, int status) {
  std::fprintf(stderr, "\nfer-train: error: %s\n", message.c_str());
  std::exit(status);
}

#endif

bool mpi_started() { return g_ranks > 0; }

void mpi_quiet_other_ranks() {
  if (g_rank == 0 || g_error_fd != STDERR_FILENO) return;
  std::fflush(stdout);
  std::fflush(stderr);
  g_error_fd = ::dup(STDERR_FILENO);
  const int null = ::open("/dev/null", O_WRONLY);
  if (null < 0) return;
  ::dup2(null, STDOUT_FILENO);
  ::dup2(null, STDERR_FILENO);
  ::close(null);
}

}  // namespace ferkit
