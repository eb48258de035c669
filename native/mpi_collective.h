// Data-parallel training across processes started by mpirun (`fer-train train --distributed`): the core's
// Collective (core/collective.h) over MPI's world communicator. Built when CMake finds MPI (Debian's
// libopenmpi-dev; FERKIT_HAVE_MPI); without it, mpi_start() refuses with the package to install.
#pragma once
#include <memory>
#include <string>

#include "collective.h"

namespace ferkit {

// Starts MPI (once per process) and returns the world's processes as a Collective; MPI is finalized when the last
// one returned is destroyed. Throws std::runtime_error if the build has no MPI.
std::unique_ptr<Collective> mpi_start();
// Whether mpi_start() ran in this process (then errors go through mpi_fail).
bool mpi_started();
// Processes other than rank 0 print nothing from here on (their standard output and error go to /dev/null);
// mpi_fail() still reaches the terminal.
void mpi_quiet_other_ranks();
// After an error in one process: prints it, naming the rank, where the terminal sees it, and ends every process of
// the run (MPI_Abort: the others may be waiting in a sum that this one will never join).
[[noreturn]] void mpi_fail(const std::string& message, int status);

}  // namespace ferkit
