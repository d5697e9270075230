/* cli_mpi.h — the little of MPI that `raddino index --mpi` needs (cli/cli_mpi.c). MPI stays
 * out of the library: only the raddino program links it, and only when CMake found it
 * (RADDINO_MPI); without it cli_mpi_available() is false. */
#ifndef RADDINO_CLI_MPI_H
#define RADDINO_CLI_MPI_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int rank, size;         /* in MPI_COMM_WORLD */
    int local_rank, local_size;     /* on this node (MPI_Comm_split_type shared) */
} cli_mpi;

/* Whether this program was built with MPI. */
bool cli_mpi_available(void);
/* MPI_Init and the ranks; false (with a message printed) when it cannot. */
bool cli_mpi_init(cli_mpi *m);
/* Element-wise sum / max of n int64 values over all ranks, in place. */
void cli_mpi_sum(int64_t *values, int n);
void cli_mpi_max(int64_t *values, int n);
/* The OpenMP/OpenBLAS threads this rank should use: the cores in its affinity mask, divided
 * by the ranks on this node when the ranks are not bound (each mask holds every core). */
int cli_mpi_threads(const cli_mpi *m);
void cli_mpi_finalize(void);

#endif
