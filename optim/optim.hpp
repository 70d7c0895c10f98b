// rewind/optim/optim.hpp — the optimizers, gradient clipping and learning-rate schedules.
#pragma once

#include "optimizer.hpp"

#include "adam.hpp"
#include "clip.hpp"
#include "rmsprop.hpp"
#include "schedule.hpp"
#include "sgd.hpp"
