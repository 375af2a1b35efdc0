/* The smallest broker a provider can write with an installed libosb: it must compile with
 * nothing but `pkg-config --cflags --libs libosb`, start, serve its catalog, and stop. */
#include <osb/osb.h>
#include <stdio.h>

static int provision(osb_call *c) { (void)c; return 0; }
static int deprovision(osb_call *c) { (void)c; return 0; }

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: minimal_broker CATALOG DATA_DIR\n");
        return 2;
    }
    osb_callbacks cb = {.provision = provision, .deprovision = deprovision};
    osb_config cfg = {.listen = "127.0.0.1:0", .catalog_path = argv[1], .data_dir = argv[2],
                      .user = "u", .password = "p"};
    osb_broker *b;
    char err[256];
    if (osb_broker_start(&cfg, &cb, &b, err, sizeof err) != 0) {
        fprintf(stderr, "minimal_broker: %s\n", err);
        return 1;
    }
    printf("port %u, %zu services\n", osb_broker_port(b),
           json_array_size(json_object_get(osb_broker_catalog(b), "services")));
    osb_broker_stop(b);
    return 0;
}
