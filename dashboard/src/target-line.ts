/**
 * The dashed target line with its label, drawn on a uPlot chart's canvas
 * (the live link charts and the regulator's breach timeline share it).
 */
import uPlot from 'uplot';
import { fmtMs } from './format.js';

export function drawTargetLine(u: uPlot, targetMs: number, scale: string, colour: string): void {
  const y = Math.round(u.valToPos(targetMs, scale, true));
  const { left, top, width, height } = u.bbox;
  if (y < top || y > top + height) return;
  const pr = uPlot.pxRatio;
  const ctx = u.ctx;
  ctx.save();
  ctx.strokeStyle = colour;
  ctx.lineWidth = pr;
  ctx.setLineDash([6 * pr, 4 * pr]);
  ctx.beginPath();
  ctx.moveTo(left, y + 0.5);
  ctx.lineTo(left + width, y + 0.5);
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.fillStyle = colour;
  ctx.font = `${11 * pr}px system-ui, sans-serif`;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'bottom';
  ctx.fillText(`target ${fmtMs(targetMs)}`, left + width - 4 * pr, y - 3 * pr);
  ctx.restore();
}
