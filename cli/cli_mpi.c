/* cli_mpi.c — MPI for `raddino index --mpi` (cli_mpi.h). Compiled into the raddino program
 * only, with RADDINO_HAVE_MPI when CMake found an MPI (option RADDINO_MPI); libraddino.so never
 * links MPI, so library users and the non-MPI commands do not depend on it. */
#define _GNU_SOURCE
#include "cli_mpi.h"
#include "cli.h"

#include <sched.h>
#include <unistd.h>

#ifdef RADDINO_HAVE_MPI
#include <mpi.h>

bool cli_mpi_available(void) { return true; }

bool cli_mpi_init(cli_mpi *m)
{
    /* No argc/argv: the options were parsed already, and Open MPI needs none of them. */
    if (MPI_Init(NULL, NULL) != MPI_SUCCESS) {
        cli_error("index: MPI_Init failed");
        return false;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &m->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &m->size);
    MPI_Comm node;
    m->local_rank = 0;
    m->local_size = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, m->rank, MPI_INFO_NULL,
                            &node) == MPI_SUCCESS) {
        MPI_Comm_rank(node, &m->local_rank);
        MPI_Comm_size(node, &m->local_size);
        MPI_Comm_free(&node);
    }
    return true;
}

void cli_mpi_sum(int64_t *values, int n)
{
    MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
}

void cli_mpi_max(int64_t *values, int n)
{
    MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
}

void cli_mpi_finalize(void) { MPI_Finalize(); }

#else

bool cli_mpi_available(void) { return false; }

bool cli_mpi_init(cli_mpi *m)
{
    (void)m;
    return false;
}

void cli_mpi_sum(int64_t *values, int n)
{
    (void)values;
    (void)n;
}

void cli_mpi_max(int64_t *values, int n)
{
    (void)values;
    (void)n;
}

void cli_mpi_finalize(void) {}

#endif

int cli_mpi_threads(const cli_mpi *m)
{
    cpu_set_t set;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int mine = (int)online;
    if (sched_getaffinity(0, sizeof set, &set) == 0) mine = CPU_COUNT(&set);
    if (mine < 1) mine = 1;
    /* mpirun binds ranks to cores by default for up to 2 ranks and to sockets above that, and
     * not at all with --bind-to none or when oversubscribed: a mask holding every core means
     * the ranks of this node share all of them. */
    if (mine >= online && m->local_size > 1) mine = (int)(online / m->local_size);
    return mine < 1 ? 1 : mine;
}
