/* act.c - the contract's tanh and sigmoid in binary32.
 *
 * tanh(x): a = min(|x|, 9); a2 = a*a;
 *          p = ((P3*a2 + P2)*a2 + P1)*a2 + P0;  q = ((Q3*a2 + Q2)*a2 + Q1)*a2 + Q0;
 *          t = min((a*p)/q, 1);  x < 0 ? -t : t          (so tanh(-0) = +0)
 * sigmoid(x) = 0.5*tanh(0.5*x) + 0.5
 * Only +, *, / and comparisons, each correctly rounded: the same bits on any IEEE FPU when
 * built with -ffp-contract=off. 7 multiplies, 6 adds, 1 divide.
 */
#include "tdn/act.h"
#include "tdn/fp16.h"

#define P0 0.99997646f
#define P1 0.120249294f
#define P2 0.0020444868f
#define P3 2.9559355e-06f
#define Q0 1.0f
#define Q1 0.4535122f
#define Q2 0.019944802f
#define Q3 0.000118415825f

float act_tanh(float x)
{
    float a = tdn_bits_f32(tdn_f32_bits(x) & 0x7fffffffu); /* |x|, +0 for -0 */
    float a2, p, q, t;
    if (a > 9.0f) a = 9.0f;
    a2 = a * a;
    p = ((P3 * a2 + P2) * a2 + P1) * a2 + P0;
    q = ((Q3 * a2 + Q2) * a2 + Q1) * a2 + Q0;
    t = a * p / q;
    if (t > 1.0f) t = 1.0f;
    return x < 0.0f ? -t : t;
}

float act_sigmoid(float x)
{
    return 0.5f * act_tanh(0.5f * x) + 0.5f;
}
