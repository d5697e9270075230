/* main.c — the raddino command: dispatches to the subcommands. */
#include "cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: raddino COMMAND [OPTIONS] ...\n"
    "\n"
    "RAD-DINO chest X-ray embeddings (DINOv2 ViT-B/14), exact to the reference model.\n"
    "\n"
    "commands:\n"
    "  embed        embed images: CLS vectors, patch maps, all tokens\n"
    "  preprocess   write the 518x518 network input crop of an image (and its tensor)\n"
    "  model info   describe the model: where it was found, config, tensors, sha256\n"
    "  model fetch  download RAD-DINO into the Hugging Face cache\n"
    "  index        embed whole folders into a database, keeping it up to date\n"
    "  merge        merge shard databases (index --shard, --mpi) into the collection\n"
    "  stats        summarise a database: images, failures, model, last run\n"
    "  export       write a database's vectors as .npy (and their paths as CSV)\n"
    "  search       the stored images most similar to images, ids or stored paths\n"
    "  index-info   the search index: type, size, memory, recall of approximate types\n"
    "  cluster      group the images by k-means (stored in the database)\n"
    "  clusters     show stored clustering results again\n"
    "  dedup        groups of exact and near-duplicate images\n"
    "  eval         retrieval quality on labelled images: P@k, recall@k, mAP\n"
    "  serve        a web page and JSON API: search by upload or id, clusters, stats\n"
    "  import       store vectors computed elsewhere (.npy + paths), verified by sample\n"
    "  probe        classification on stored vectors: logistic regression and kNN, AUROC\n"
    "\n"
    "Run 'raddino COMMAND --help' for a command's options, 'raddino --version [--json]' for\n"
    "the version, the libraries in use and the CPU kernel.\n"
    "Exit status: 0 all done; 1 the command failed, or some inputs did (files that could not\n"
    "be read or embedded; for index, files that failed in this run); 2 the command line is\n"
    "wrong (nothing done). --json output is UTF-8: a file name's bytes that are not valid\n"
    "UTF-8 are written as \\udcXX (Python: .encode('utf-8', 'surrogateescape')).\n";

/* OpenMP threads that finish a parallel region spin for a while before they sleep (libgomp's
 * default "active" wait). On a machine with other work running (decoder threads of `index`,
 * requests of `serve`, anything else the user runs) those spinning threads take the CPU from the
 * threads that still have work: a ViT-B pass measured 1.93 s instead of 1.45 s on 2 busy cores,
 * while on idle cores "passive" costs nothing measurable (0.698 vs 0.700 s). libgomp reads
 * OMP_WAIT_POLICY once, when it is loaded, before main(): so when the user has not chosen a
 * policy, set passive and start again once. If the exec fails we simply go on. */
static void prefer_passive_openmp_wait(char **argv)
{
    if (getenv("OMP_WAIT_POLICY")) return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv)
{
    prefer_passive_openmp_wait(argv);
    if (argc < 2) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    /* Past a file-size limit (ulimit -f) the kernel sends SIGXFSZ, which kills by default; ignored,
     * the write fails with EFBIG instead and the command reports it (a store batch is rolled
     * back, nothing half-written). */
    signal(SIGXFSZ, SIG_IGN);
    const char *command = argv[1];
    if (!strcmp(command, "--help") || !strcmp(command, "-h") || !strcmp(command, "help")) {
        fputs(usage, stdout);
        return EXIT_OK;
    }
    if (!strcmp(command, "--version")) return cmd_version(argc - 1, argv + 1);
    if (!strcmp(command, "embed")) return cmd_embed(argc - 1, argv + 1);
    if (!strcmp(command, "preprocess")) return cmd_preprocess(argc - 1, argv + 1);
    if (!strcmp(command, "model")) return cmd_model(argc - 1, argv + 1);
    if (!strcmp(command, "index")) return cmd_index(argc - 1, argv + 1);
    if (!strcmp(command, "merge")) return cmd_merge(argc - 1, argv + 1);
    if (!strcmp(command, "__decode-check")) return cmd_decode_check(argc - 1, argv + 1);
    if (!strcmp(command, "stats")) return cmd_stats(argc - 1, argv + 1);
    if (!strcmp(command, "export")) return cmd_export(argc - 1, argv + 1);
    if (!strcmp(command, "search")) return cmd_search(argc - 1, argv + 1);
    if (!strcmp(command, "index-info")) return cmd_index_info(argc - 1, argv + 1);
    if (!strcmp(command, "cluster")) return cmd_cluster(argc - 1, argv + 1);
    if (!strcmp(command, "clusters")) return cmd_clusters(argc - 1, argv + 1);
    if (!strcmp(command, "dedup")) return cmd_dedup(argc - 1, argv + 1);
    if (!strcmp(command, "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(command, "serve")) return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(command, "import")) return cmd_import(argc - 1, argv + 1);
    if (!strcmp(command, "probe")) return cmd_probe(argc - 1, argv + 1);
    cli_error("unknown command '%s' (try 'raddino --help')", command);
    return EXIT_USAGE;
}
