// rewind/nn/nn.hpp — every layer.
#pragma once

#include "activation.hpp"
#include "chain.hpp"
#include "dense.hpp"
#include "dropout.hpp"
#include "embedding.hpp"
#include "init.hpp"
#include "layer_norm.hpp"
#include "module.hpp"
