/*
 * tools/shpbench/single.c - see single.h.
 */
#include "shpbench/single.h"

#include "shpbench/report.h"

#include <stdio.h>

int shpb_single_main(const shpb_opts *o, shpb_backend *b)
{
    unsigned of = 0, no = 0;
    for (unsigned k = 0; k < SHPB_POOL_KINDS; k++)
        of += o->pools[k];
    shpb_result rs[SHPB_POOL_KINDS];
    unsigned n = 0;
    int status = 0;
    shpb_print_header(o, b, NULL);
    fflush(stdout);
    for (unsigned k = 0; k < SHPB_POOL_KINDS; k++) {
        if (!o->pools[k])
            continue;
        if (shpb_run_pool(o, b, (shpb_pool_kind)k, ++no, of, &rs[n]) != 0)
            status = 1;
        n++;
    }
    shpb_print_table(o, rs, n);
    if (o->csv_path != NULL && shpb_write_results_csv(o->csv_path, rs, n) != 0)
        status = 1;
    if (o->json_path != NULL && shpb_write_results_json(o->json_path, o, b, rs, n) != 0)
        status = 1;
    for (unsigned i = 0; i < n; i++)
        shpb_result_free(&rs[i]);
    return status;
}
