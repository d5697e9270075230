/* nearest.c — a program built against the installed libraddino through pkg-config:
 *
 *     cc -o nearest nearest.c $(pkg-config --cflags --libs raddino)
 *     ./nearest raddino.db [ID] [K]
 *
 * Opens a collection made by `raddino index`, takes stored image ID (default: the first one)
 * as the query and prints its K nearest stored images (default 5): rank, cosine, id, path.
 * The same as `raddino search --db raddino.db --id ID -k K`.
 */
#include <raddino/raddino.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s DB [ID] [K]\n", argv[0]);
        return 2;
    }
    raddino_build_info b;
    raddino_get_build_info(&b);
    printf("libraddino %s (commit %s), kernel %s\n", b.version, b.git_commit, b.kernel);

    raddino_collection_params params = raddino_collection_default_params();
    raddino_collection *c;
    raddino_status st = raddino_collection_open(argv[1], &params, &c);
    if (st.code) {
        fprintf(stderr, "nearest: %s\n", st.message);
        return 1;
    }
    raddino_collection_info info;
    raddino_collection_get_info(c, &info);
    int k = argc > 3 ? atoi(argv[3]) : 5;
    float *all = NULL, *query = malloc((size_t)info.dim * sizeof *query);
    float *scores = malloc((size_t)(k > 0 ? k : 1) * sizeof *scores);
    int64_t *ids = malloc((size_t)(k > 0 ? k : 1) * sizeof *ids), *all_ids = NULL;
    size_t n = 0;
    int64_t id = -1;
    int found = 0, rc = 1;
    if (!query || !scores || !ids || k <= 0) {
        fprintf(stderr, "nearest: bad K or out of memory\n");
        goto done;
    }
    if (argc > 2) {
        id = atoll(argv[2]);
    } else {
        st = raddino_collection_read_all(c, &all, &all_ids, &n);
        if (st.code) goto failed;
        if (n) id = all_ids[0];
    }
    raddino_store_image img;
    st = raddino_collection_vector(c, id, query, &img, &found);
    if (st.code) goto failed;
    if (!found) {
        fprintf(stderr, "nearest: %s: no image %lld with a vector\n", argv[1], (long long)id);
        goto done;
    }
    printf("query %lld: %s\n", (long long)id, img.path);
    st = raddino_collection_search(c, query, 1, k, -2.0f, NULL, NULL, scores, ids);
    if (st.code) goto failed;
    for (int i = 0; i < k && ids[i] >= 0; i++) {
        st = raddino_store_find_id(raddino_collection_store(c), ids[i], NULL, &img, &found);
        if (st.code) goto failed;
        printf("%4d  %.6f  %8lld  %s\n", i + 1, scores[i], (long long)ids[i],
               found ? img.path : "?");
    }
    rc = 0;
    goto done;
failed:
    fprintf(stderr, "nearest: %s\n", st.message);
done:
    free(all);
    free(all_ids);
    free(query);
    free(scores);
    free(ids);
    raddino_collection_close(c);
    return rc;
}
