// 64-byte aligned float storage. Eigen and the compiler's vector code pick their code paths (vector body vs
// scalar head and tail, fused or separate multiply-add) by a buffer's alignment, so the same computation on a
// differently aligned buffer can round differently. Every parameter, gradient and activation buffer uses this
// allocator: the numbers are then the same on every run, not only on runs whose heap happened to align alike.
#pragma once
#include <cstddef>
#include <new>
#include <vector>

namespace ferkit {

template <class T>
struct AlignedAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, kAlign); }
  template <class U>
  bool operator==(const AlignedAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const AlignedAllocator<U>&) const { return false; }
};

using Floats = std::vector<float, AlignedAllocator<float>>;

}  // namespace ferkit
