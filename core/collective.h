// What the processes of a data-parallel training run (`fer-train train --distributed` under mpirun) share: sums,
// an equality check and a broadcast. The core only sees this interface; native/mpi_collective.h implements it over MPI, and the
// tests over threads. Every process calls the same methods in the same order with the same sizes (a collective
// call that one process skips blocks the others), and every process receives bit-identical results.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ferkit {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;  // 0 .. size() - 1
  virtual int size() const = 0;
  // In place: every process gets the element-wise sum over all processes.
  virtual void sum(double* values, size_t n) = 0;
  virtual void sum(float* values, size_t n) = 0;
  // Whether every process passed the same value (all get the same answer).
  virtual bool same(uint64_t value) = 0;
  // Rank 0's bytes, to every process (the others' bytes are replaced).
  virtual void broadcast(std::vector<uint8_t>& bytes) = 0;
};

// The rows [begin, end) of an n-row batch that `rank` of `ranks` processes: contiguous, in rank order, sizes
// differing by at most one (a rank gets none when n < ranks).
struct Shard {
  int begin = 0, end = 0;
  int size() const { return end - begin; }
};
inline Shard shard_of(int n, int rank, int ranks) {
  const auto at = [&](int r) { return static_cast<int>(static_cast<int64_t>(n) * r / ranks); };
  return {at(rank), at(rank + 1)};
}

}  // namespace ferkit
