// The program of the layering link check (CMakeLists.txt, rewind_layer_<name>): it links one layer's
// objects with those of the layers below and does nothing, so the only way to fail is an undefined
// reference — a call into a layer above.
int main() { return 0; }
